//! End to end over MPI: the `reclip` binary trained by two ranks under
//! `mpirun` learns what one process does with the same global batch,
//! resumes on another number of ranks, refuses ranks that disagree, and
//! ends the whole job — never hangs — when one rank fails or dies.
//!
//! Needs Open MPI's mpirun (tools/install-mpi.sh); built only with the
//! `mpi` feature: `cargo test --features mpi --test mpi`.

mod common;

use reclip::model::checkpoint;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const STEPS: u64 = 20;

/// Where the stopped runs stop: two checkpoints (every 5 steps) in.
const STOP_AFTER: u64 = 10;

/// A job still running after this has hung: it is killed and the test fails.
const TIMEOUT: Duration = Duration::from_secs(120);

// Tolerances of two ranks against one process, the same global batch (16)
// split 8 + 8: the split changes the order of float sums, nothing else.
// Measured with the options of `train_args` (seed 3, 20 steps, logged every
// step): loss 4.8e-7, grad norm 2.3e-5 relative, weights 2.4e-6; the same
// after a resume on the other number of ranks. Each tolerance is about 40x
// that (seeds 1, 2, 4, 5 measured up to 1.3e-5, 1.1e-4 and 1.3e-5). A wrong
// data order or a per-rank loss moves the loss by 1e-2 and more; a sum of
// the ranks' gradients instead of their mean doubles the grad norm.

/// Largest difference of a logged loss.
const LOSS_TOL: f64 = 2e-5;
/// Largest relative difference of a logged gradient norm.
const GRAD_NORM_TOL: f64 = 1e-3;
/// Largest difference of any final weight.
const WEIGHT_TOL: f32 = 1e-4;

fn reclip_path() -> &'static str {
    env!("CARGO_BIN_EXE_reclip")
}

/// `reclip args` in one process, without mpirun.
fn alone(args: &[String]) -> Command {
    let mut cmd = Command::new(reclip_path());
    cmd.args(args);
    cmd
}

/// `mpirun` with the settings of a small machine, run as root or not;
/// without Open MPI the test fails (CI installs it): the feature is on.
fn mpirun() -> Command {
    let path = std::env::var_os("PATH").unwrap_or_default();
    assert!(
        std::env::split_paths(&path).any(|dir| dir.join("mpirun").is_file()),
        "mpirun is not on PATH: the mpi feature's tests need Open MPI; install it with tools/install-mpi.sh"
    );
    let mut cmd = Command::new("mpirun");
    cmd.arg("--oversubscribe")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // Two ranks on two cores: a rank waiting on the other gives up its core.
        .env("OMPI_MCA_mpi_yield_when_idle", "1");
    cmd
}

/// `mpirun -np ranks reclip args`.
fn on_ranks(ranks: usize, args: &[String]) -> Command {
    let mut cmd = mpirun();
    cmd.args(["-np", &ranks.to_string(), reclip_path()]).args(args);
    cmd
}

/// One rank each, in its own working folder: `mpirun -np 1 -wdir D reclip
/// ARGS : -np 1 ...` (Open MPI's MPMD form).
fn one_rank_each(ranks: &[(&Path, &[String])]) -> Command {
    let mut cmd = mpirun();
    for (i, (dir, args)) in ranks.iter().enumerate() {
        if i > 0 {
            cmd.arg(":");
        }
        cmd.args(["-np", "1", "-wdir", dir.to_str().unwrap(), reclip_path()]).args(*args);
    }
    cmd
}

/// A started job, its stdout and stderr together in a file: no pipe that a
/// rank left behind can hold the test up.
struct Job {
    child: Child,
    log: PathBuf,
    started: Instant,
}

/// How a job ended: its status and everything it printed.
struct Ended {
    status: ExitStatus,
    text: String,
}

impl Job {
    fn start(mut cmd: Command, log: &Path) -> Job {
        let file = std::fs::File::create(log).unwrap();
        // Its own process group, so that a hung job can be killed whole.
        cmd.stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file).env_remove("RUST_BACKTRACE");
        cmd.process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        Job { child, log: log.to_path_buf(), started: Instant::now() }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The job's end, or a failure once it has run past [`TIMEOUT`].
    fn wait(mut self) -> Ended {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Ended { status, text: self.text() };
            }
            if self.started.elapsed() > TIMEOUT {
                self.kill_all();
                panic!("still running after {TIMEOUT:?}, killed: a hang. It printed:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The launched ranks, children of mpirun: (process id, MPI rank).
    fn ranks(&self) -> Vec<(u32, usize)> {
        let parent = format!("PPid:\t{}", self.child.id());
        let mut ranks = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            if !status.lines().any(|l| l == parent) {
                continue;
            }
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let rank = environ
                .split(|b| *b == 0)
                .find_map(|v| std::str::from_utf8(v).ok()?.strip_prefix("OMPI_COMM_WORLD_RANK=")?.parse().ok());
            if let Some(rank) = rank {
                ranks.push((pid, rank));
            }
        }
        ranks
    }

    /// mpirun's process group and every rank's (Open MPI gives each its own).
    fn kill_all(&mut self) {
        for (pid, _) in self.ranks() {
            kill(&format!("-{pid}"));
        }
        kill(&format!("-{}", self.child.id()));
        let _ = self.child.wait();
    }
}

/// SIGKILL to a process, or to a process group given as `-pgid`.
fn kill(target: &str) {
    let _ = Command::new("kill").args(["-KILL", "--", target]).status();
}

/// Runs `cmd` to its end (or fails after [`TIMEOUT`]), printing into `log`.
fn run(cmd: Command, log: &Path) -> Ended {
    Job::start(cmd, log).wait()
}

/// Runs `cmd`, which must succeed.
fn succeeds(cmd: Command, log: &Path) {
    let ended = run(cmd, log);
    assert!(ended.status.success(), "{}: {}\n{}", log.display(), ended.status, ended.text);
}

/// Runs `cmd`, which must end with the exit status of an aborted job (2)
/// having printed every one of `needles`.
fn aborts_with(cmd: Command, log: &Path, needles: &[&str]) -> String {
    let ended = run(cmd, log);
    assert_eq!(ended.status.code(), Some(2), "{}: {}\n{}", log.display(), ended.status, ended.text);
    assert!(!ended.text.contains("panicked"), "{}", ended.text);
    for n in needles {
        assert!(ended.text.contains(n), "{}: no {n:?} in\n{}", log.display(), ended.text);
    }
    ended.text
}

/// A scratch folder holding the tiny model's config.
struct Scratch {
    dir: tempfile::TempDir,
    model: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny.json");
        std::fs::write(&model, common::TINY).unwrap();
        Scratch { dir, model }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.log"))
    }

    /// `reclip train` of the tiny model into `out` with `extra` options.
    fn train_args(&self, out: &Path, extra: &[&str]) -> Vec<String> {
        let args = [
            "train",
            "--model",
            self.model.to_str().unwrap(),
            "--text-len",
            "8",
            "--steps",
            &STEPS.to_string(),
            "--batch-size",
            "16",
            "--warmup",
            "2",
            "--log-every",
            "1",
            "--eval-every",
            "0",
            "--checkpoint-every",
            "5",
            "--probe-steps",
            "1",
            "--workers",
            "1",
            "--seed",
            "3",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        args.iter().chain(extra).map(|s| s.to_string()).collect()
    }
}

/// `args` with `option`'s value replaced by `value`.
fn set(mut args: Vec<String>, option: &str, value: &str) -> Vec<String> {
    let at = args.iter().position(|a| a == option).unwrap_or_else(|| panic!("no {option} in {args:?}"));
    args[at + 1] = value.to_string();
    args
}

fn resume(out: &Path) -> Vec<String> {
    ["train", "--resume", out.to_str().unwrap(), "--quiet"].map(String::from).to_vec()
}

/// (step, loss, grad norm) of every logged training step.
fn curve(out: &Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap(), v["grad_norm"].as_f64().unwrap()))
        .collect()
}

/// Run `b` logged every step `a` did, the same up to step `exact_to` and
/// within the tolerances after it.
fn assert_same_curve(a: &Path, b: &Path, exact_to: u64) {
    let (ca, cb) = (curve(a), curve(b));
    let steps = |c: &[(u64, f64, f64)]| c.iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(steps(&ca), (1..=STEPS).collect::<Vec<_>>(), "{}", a.display());
    assert_eq!(steps(&cb), steps(&ca), "{}", b.display());
    for ((step, loss_a, norm_a), (_, loss_b, norm_b)) in ca.into_iter().zip(cb) {
        if step <= exact_to {
            assert_eq!((loss_a, norm_a), (loss_b, norm_b), "step {step}: the same run until it stopped");
        }
        assert!((loss_a - loss_b).abs() <= LOSS_TOL, "step {step}: loss {loss_a} against {loss_b}");
        assert!(
            (norm_a - norm_b).abs() <= GRAD_NORM_TOL * norm_a.abs(),
            "step {step}: gradient norm {norm_a} against {norm_b}"
        );
    }
}

/// Every tensor of both runs' final model, each weight within [`WEIGHT_TOL`].
fn assert_same_weights(a: &Path, b: &Path) {
    let load = |out: &Path| checkpoint::load(&out.join("model.safetensors")).unwrap().tensors;
    let (ta, tb) = (load(a), load(b));
    let names = |t: &[(String, reclip::core::Tensor)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ta), names(&tb));
    for ((name, x), (_, y)) in ta.iter().zip(&tb) {
        assert_eq!(x.dims(), y.dims(), "{name}");
        let (x, y) = (x.to_vec_f32().unwrap(), y.to_vec_f32().unwrap());
        let worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
        assert!(worst <= WEIGHT_TOL, "{name}: weights differ by up to {worst}");
    }
}

fn report(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn latest_step(out: &Path) -> Option<u64> {
    let name = std::fs::read_to_string(out.join("checkpoints/latest")).ok()?;
    name.trim().strip_prefix("step-")?.parse().ok()
}

#[test]
fn two_ranks_train_as_one_process_does() {
    let s = Scratch::new();
    let (one, two) = (s.path("one"), s.path("two"));
    succeeds(alone(&s.train_args(&one, &[])), &s.log("one"));
    // Passing also means every weights checksum (at the start, at each
    // checkpoint) agreed between the ranks.
    succeeds(on_ranks(2, &s.train_args(&two, &[])), &s.log("two"));

    assert_same_curve(&one, &two, 0);
    assert_same_weights(&one, &two);
    let (r1, r2) = (report(&one), report(&two));
    assert_eq!((r1["world_size"].as_u64(), r1["dist_backend"].as_str()), (Some(1), Some("single")));
    assert_eq!((r2["world_size"].as_u64(), r2["dist_backend"].as_str()), (Some(2), Some("mpi")));
    assert_eq!(r2["batch_size"].as_u64(), Some(16));
    assert_eq!(r2["total"]["samples"].as_u64(), Some(16 * STEPS));
    assert_eq!(r2["total"]["samples"], r1["total"]["samples"]);
    let samples = |r: &Value| r["phases"].as_array().unwrap().iter().map(|p| p["samples"].clone()).collect::<Vec<_>>();
    assert_eq!(samples(&r2), samples(&r1));
}

#[test]
fn three_ranks_train_siglip_as_one_process_does() {
    // Three ranks pass their text blocks round the ring twice a step; the
    // sum of each rank's blocks is the whole batch's sigmoid loss.
    let s = Scratch::new();
    let (one, three) = (s.path("siglip-one"), s.path("siglip-three"));
    let args = |out: &Path| set(s.train_args(out, &["--loss", "siglip"]), "--batch-size", "24");
    succeeds(alone(&args(&one)), &s.log("siglip-one"));
    succeeds(on_ranks(3, &args(&three)), &s.log("siglip-three"));
    assert_same_curve(&one, &three, 0);
    assert_same_weights(&one, &three);
    let bias = |out: &Path| {
        let tensors = checkpoint::load(&out.join("model.safetensors")).unwrap().tensors;
        let (_, t) = tensors.into_iter().find(|(n, _)| n == "logit_bias").expect("a logit_bias tensor");
        t.to_vec_f32().unwrap()[0]
    };
    assert!(bias(&three) != -10.0, "the bias was trained");
}

#[test]
fn two_ranks_accumulating_train_as_one_process_does() {
    // Each rank's step is 2 micro-batches of 4: the loss over all 16 pairs,
    // the gradients averaged after the last pass.
    let s = Scratch::new();
    let (one, two) = (s.path("accum-one"), s.path("accum-two"));
    let args = |out: &Path| set(s.train_args(out, &["--accum-freq", "2"]), "--batch-size", "8");
    succeeds(alone(&args(&one)), &s.log("accum-one"));
    succeeds(on_ranks(2, &args(&two)), &s.log("accum-two"));
    assert_same_curve(&one, &two, 0);
    assert_same_weights(&one, &two);
    assert_eq!(report(&two)["total"]["samples"].as_u64(), Some(16 * STEPS));
}

#[test]
fn two_ranks_with_patch_dropout_and_accumulation_train_as_one_process_does() {
    // Each image keeps the patches its row of the global batch draws,
    // whichever rank and micro-batch it falls in.
    let s = Scratch::new();
    let (one, two) = (s.path("dropout-one"), s.path("dropout-two"));
    let extra = ["--accum-freq", "2", "--patch-dropout", "0.5"];
    let args = |out: &Path| set(s.train_args(out, &extra), "--batch-size", "8");
    succeeds(alone(&args(&one)), &s.log("dropout-one"));
    succeeds(on_ranks(2, &args(&two)), &s.log("dropout-two"));
    assert_same_curve(&one, &two, 0);
    assert_same_weights(&one, &two);
    assert_eq!(report(&two)["phases"][0]["tokens_per_image"].as_u64(), Some(3));
}

#[test]
fn ranks_that_disagree_are_refused() {
    let s = Scratch::new();

    // Started with different seeds: caught by the command-line check,
    // before anything is written.
    let out = s.path("seeds");
    let a = s.train_args(&out, &[]);
    let b = set(a.clone(), "--seed", "4");
    let here = s.dir.path();
    aborts_with(one_rank_each(&[(here, &a), (here, &b)]), &s.log("seeds"), &["ranks disagree on the command line"]);
    assert!(!out.exists(), "a refused job wrote its --out");

    // The same command line, `--resume run`, in two folders whose runs are
    // the same but for rank 1's weights: caught by the weights checksum as
    // the ranks start. (reclip-dist's mpi_ranks test checks the checksum
    // itself over two ranks.)
    let (x, y) = (s.path("x"), s.path("y"));
    let other = s.path("other");
    std::fs::create_dir(&x).unwrap();
    let stop = ["--stop-after", "5"];
    succeeds(alone(&s.train_args(&x.join("run"), &stop)), &s.log("x"));
    succeeds(alone(&set(s.train_args(&other, &stop), "--seed", "4")), &s.log("other"));
    copy_dir(&x, &y);
    let weights = "checkpoints/step-0000005/model.safetensors";
    std::fs::copy(other.join(weights), y.join("run").join(weights)).unwrap();
    let args = ["train", "--resume", "run", "--quiet"].map(String::from);
    aborts_with(
        one_rank_each(&[(&x, &args), (&y, &args)]),
        &s.log("weights"),
        &["ranks disagree on the weights after step 5"],
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_stopped_run_resumes_on_another_number_of_ranks() {
    let s = Scratch::new();
    let stop = ["--stop-after", &STOP_AFTER.to_string()].map(String::from);
    let stop: Vec<&str> = stop.iter().map(String::as_str).collect();

    // Two ranks, stopped, resumed by one process.
    let (two, two_then_one) = (s.path("two"), s.path("two_then_one"));
    succeeds(on_ranks(2, &s.train_args(&two, &[])), &s.log("two"));
    succeeds(on_ranks(2, &s.train_args(&two_then_one, &stop)), &s.log("two_stopped"));
    assert_eq!(latest_step(&two_then_one), Some(STOP_AFTER));
    succeeds(alone(&resume(&two_then_one)), &s.log("one_resumed"));

    // One process, stopped, resumed by two ranks.
    let (one, one_then_two) = (s.path("one"), s.path("one_then_two"));
    succeeds(alone(&s.train_args(&one, &[])), &s.log("one"));
    succeeds(alone(&s.train_args(&one_then_two, &stop)), &s.log("one_stopped"));
    succeeds(on_ranks(2, &resume(&one_then_two)), &s.log("two_resumed"));

    for (whole, resumed, world) in [(&two, &two_then_one, 1), (&one, &one_then_two, 2)] {
        assert_eq!(latest_step(resumed), Some(STEPS));
        assert_same_curve(whole, resumed, STOP_AFTER);
        assert_same_weights(whole, resumed);
        let r = report(resumed);
        assert_eq!(r["total"]["steps"].as_u64(), Some(STEPS), "{r}");
        assert_eq!(r["total"]["samples"].as_u64(), Some(16 * STEPS), "{r}");
        assert_eq!(r["world_size"].as_u64(), Some(world), "the report names the ranks that finished the run");
    }
}

/// A CSV list of 16 small images in `dir`, as `list.csv`.
fn write_csv_data(dir: &Path) {
    let mut list = String::from("filepath\ttitle\n");
    for i in 0..16u8 {
        let image = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([i * 15, x as u8 * 16, y as u8 * 16]));
        image.save(dir.join(format!("{i}.png"))).unwrap();
        list.push_str(&format!("{i}.png\timage number {i}\n"));
    }
    std::fs::write(dir.join("list.csv"), list).unwrap();
}

#[test]
fn a_rank_that_fails_ends_the_job_with_its_error() {
    let s = Scratch::new();
    // The same command line on both ranks (another one would be refused
    // before the data is read): `--data list.csv`, which rank 0's folder
    // has and rank 1's has not.
    let (x, y) = (s.path("x"), s.path("y"));
    for dir in [&x, &y] {
        std::fs::create_dir(dir).unwrap();
    }
    write_csv_data(&x);
    let args = s.train_args(&s.path("run"), &["--data", "list.csv"]);
    let text =
        aborts_with(one_rank_each(&[(&x, &args), (&y, &args)]), &s.log("job"), &["error: rank 1 of 2: list.csv"]);
    assert!(!text.contains("error: rank 0"), "rank 0 had nothing wrong:\n{text}");
}

#[test]
fn a_killed_rank_ends_the_job() {
    let s = Scratch::new();
    let out = s.path("run");
    // Far longer than the test waits: the job cannot end by finishing.
    let args = set(s.train_args(&out, &[]), "--steps", "100000");
    let job = Job::start(on_ranks(2, &args), &s.log("job"));
    let metrics = out.join("metrics.jsonl");
    while std::fs::read_to_string(&metrics).map_or(true, |m| m.is_empty()) {
        assert!(job.started.elapsed() < TIMEOUT, "no step logged after {TIMEOUT:?}:\n{}", job.text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let ranks = job.ranks();
    let (rank1, _) = *ranks.iter().find(|(_, rank)| *rank == 1).unwrap_or_else(|| panic!("no rank 1 in {ranks:?}"));
    kill(&rank1.to_string());
    let ended = job.wait();
    assert!(!ended.status.success(), "the job went on without rank 1:\n{}", ended.text);
}

#[test]
fn commands_of_one_process_and_uneven_batches_are_refused() {
    let s = Scratch::new();
    // Refused before anything is read: the checkpoint need not exist.
    let none = s.path("none.safetensors");
    for args in [vec!["flops", "--model", "reclip-tiny"], vec!["eval", "--checkpoint", none.to_str().unwrap()]] {
        let command = args[0];
        let ended = run(on_ranks(2, &args.iter().map(|a| a.to_string()).collect::<Vec<_>>()), &s.log(command));
        assert!(!ended.status.success(), "{}", ended.text);
        let refusal = format!("reclip {command} runs as one process, but mpirun started 2");
        assert_eq!(ended.text.matches(&refusal).count(), 2, "each rank refuses:\n{}", ended.text);
    }

    let out = s.path("run");
    let text = aborts_with(
        on_ranks(2, &set(s.train_args(&out, &[]), "--batch-size", "15")),
        &s.log("uneven"),
        &["--batch-size 15 is not divisible by the 2 ranks: each trains on an equal slice"],
    );
    assert!(text.contains("error: rank 0 of 2") || text.contains("error: rank 1 of 2"), "{text}");
    assert!(!out.exists(), "a refused job wrote its --out");
}

#[test]
fn two_ranks_stream_their_own_shards_and_resume_exactly() {
    let s = Scratch::new();
    let data = common::write_shards(&s.path("shards"), 4, 24);
    // 96 samples, 6 batches of 16 an epoch: the run crosses three epoch
    // ends, and stopping after step 10 stops it mid-epoch.
    let streamed = ["--data", &data, "--data-reader", "stream", "--shuffle-buffer", "16", "--samples-per-epoch", "96"];
    let stop_after = STOP_AFTER.to_string();
    let stop = [&streamed[..], &["--stop-after", &stop_after]].concat();
    let (whole, stopped, alone_copy) = (s.path("whole"), s.path("stopped"), s.path("alone"));
    succeeds(on_ranks(2, &s.train_args(&whole, &streamed)), &s.log("whole"));
    succeeds(on_ranks(2, &s.train_args(&stopped, &stop)), &s.log("stopped"));
    copy_dir(&stopped, &alone_copy);
    succeeds(on_ranks(2, &resume(&stopped)), &s.log("resumed"));
    assert_same_curve(&whole, &stopped, STEPS);
    assert_same_weights(&whole, &stopped);
    assert!(report(&stopped)["data_reader"].as_str().unwrap().starts_with("streamed: 4 shards"));

    // Each rank read its own shards: one process cannot take over exactly.
    let ended = run(alone(&resume(&alone_copy)), &s.log("alone"));
    assert!(!ended.status.success(), "{}", ended.text);
    assert!(ended.text.contains("streamed its shards over 2 rank(s), this job has 1"), "{}", ended.text);
}
