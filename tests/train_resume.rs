//! End to end: a tiny model trained by the `reclip` binary, killed after a
//! checkpoint, resumed, and evaluated — the resumed run's loss curve and final
//! weights equal those of a run that was never interrupted; the same for a
//! three-stage run stopped at and between its switches.

mod common;

use reclip::core::Tensor;
use reclip::model::checkpoint;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STEPS: u64 = 60;

fn reclip() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reclip"))
}

/// RECLIP's two phases: 45 steps at 8 px, 15 at 16 px.
const TWO_PHASES: [&str; 6] = ["--low-res", "8", "--high-res", "16", "--finetune-fraction", "0.25"];

fn train_args(model: &Path, out: &Path) -> Vec<String> {
    staged_train_args(model, out, &TWO_PHASES)
}

fn staged_train_args(model: &Path, out: &Path, schedule: &[&str]) -> Vec<String> {
    let args = [
        "train",
        "--model",
        "",
        "--steps",
        "60",
        "--batch-size",
        "8",
        "--text-len",
        "8",
        "--log-every",
        "1",
        "--eval-every",
        "0",
        "--checkpoint-every",
        "5",
        "--workers",
        "1",
        "--probe-steps",
        "1",
        "--quiet",
        "--out",
        "",
    ];
    let mut v: Vec<String> = args.iter().chain(schedule).map(|s| s.to_string()).collect();
    v[2] = model.display().to_string();
    let n = args.len();
    v[n - 1] = out.display().to_string();
    v
}

/// step → loss, from a run's metrics.jsonl.
fn losses(out: &Path) -> BTreeMap<u64, f64> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

fn weights(path: &Path) -> Vec<(String, Vec<u32>)> {
    checkpoint::load(path)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(n, t): (String, Tensor)| (n, t.to_vec_f32().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

fn latest_step(out: &Path) -> Option<u64> {
    let name = std::fs::read_to_string(out.join("checkpoints/latest")).ok()?;
    name.trim().strip_prefix("step-")?.parse().ok()
}

/// A scratch folder with the tiny model's config, and where runs a and b go.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.json");
    std::fs::write(&model, common::TINY).unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    (dir, model, a, b)
}

/// Runs a and b logged the same loss at every one of the run's steps and
/// ended with bit-identical weights.
fn assert_same_run(a: &Path, b: &Path, how: &str) {
    let (la, lb) = (losses(a), losses(b));
    assert_eq!(la.len() as u64, STEPS);
    assert_eq!(la, lb, "the loss curves differ ({how})");
    assert!(weights(&a.join("model.safetensors")) == weights(&b.join("model.safetensors")), "final weights differ");
}

/// The run `args` gives, into `a` uninterrupted and into `b` stopped after
/// `stop` steps (`place` in the run) then resumed, is the same run.
fn assert_stopped_and_resumed_is_the_same_run(
    args: impl Fn(&Path) -> Vec<String>,
    a: &Path,
    b: &Path,
    stop: u64,
    place: &str,
) {
    let status = reclip().args(args(a)).status().unwrap();
    assert!(status.success(), "the uninterrupted run failed");
    let first = reclip().args(args(b)).args(["--stop-after", &stop.to_string()]).output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let o = reclip().args(["train", "--resume", b.to_str().unwrap(), "--quiet"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_run(a, b, &format!("stopped after step {stop}, {place}"));
}

#[test]
fn a_killed_run_resumes_exactly() {
    let (_dir, model, a, b) = scratch();

    let status = reclip().args(train_args(&model, &a)).status().unwrap();
    assert!(status.success(), "the uninterrupted run failed");

    // Start the same run, kill it once its first checkpoint is complete.
    let mut child = reclip().args(train_args(&model, &b)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while latest_step(&b).is_none() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        assert!(start.elapsed() < Duration::from_secs(600), "no checkpoint after 10 minutes");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = latest_step(&b).unwrap();
    assert!(killed_at < STEPS, "the run finished before it was killed; make it longer");

    let status = reclip().args(["train", "--resume", b.to_str().unwrap(), "--quiet"]).status().unwrap();
    assert!(status.success(), "the resumed run failed");

    assert_same_run(&a, &b, &format!("killed after step {killed_at}"));

    // The resumed run's model evaluates, and as the uninterrupted one does.
    let eval = |out: &Path| {
        let o = reclip()
            .args([
                "eval",
                "--checkpoint",
                out.join("model.safetensors").to_str().unwrap(),
                "--json",
                "--device",
                "cpu",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "eval failed: {}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["zero_shot"].clone()
    };
    assert_eq!(eval(&a), eval(&b));
}

#[test]
fn a_staged_run_resumes_exactly_at_and_between_its_switches() {
    let (_dir, model, a, b) = scratch();
    // 30 steps at 8 px, 15 at 16 px, 15 at 24 px; moments resized at the switches.
    let schedule = ["--stages", "8:0.5,16:0.25,24:0.25", "--switch-moments", "resize"];

    let status = reclip().args(staged_train_args(&model, &a, &schedule)).status().unwrap();
    assert!(status.success(), "the uninterrupted run failed");

    // Stopped right at the first switch, in the middle of the second stage,
    // right at the second switch, then to the end.
    let first = reclip().args(staged_train_args(&model, &b, &schedule)).args(["--stop-after", "30"]).output().unwrap();
    assert!(first.status.success(), "a stop asked for is no error: {}", String::from_utf8_lossy(&first.stderr));
    for stop_after in [Some("7"), Some("8"), None] {
        let mut resume = reclip();
        resume.args(["train", "--resume", b.to_str().unwrap(), "--quiet"]);
        if let Some(n) = stop_after {
            resume.args(["--stop-after", n]);
        }
        let o = resume.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(latest_step(&b), Some(STEPS));

    assert_same_run(&a, &b, "stopped at steps 30, 37 and 45");

    // The report has the three stages, each with its accuracy, and both switches.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(b.join("report.json")).unwrap()).unwrap();
    let stages: Vec<(String, u64, u64)> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["name"].as_str().unwrap().to_string(), p["image_size"].as_u64().unwrap(), p["steps"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(stages, [("stage1".into(), 8, 30), ("stage2".into(), 16, 15), ("stage3".into(), 24, 15)]);
    assert!(report["phases"].as_array().unwrap().iter().all(|p| p["zero_shot_top1"].is_f64()), "{report}");
    let switches: Vec<(u64, u64, u64)> = report["switches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["step"].as_u64().unwrap(), w["from_size"].as_u64().unwrap(), w["to_size"].as_u64().unwrap()))
        .collect();
    assert_eq!(switches, [(30, 8, 16), (45, 16, 24)]);
    assert!(
        report["switches"].as_array().unwrap().iter().all(|w| w["before_at_to"].is_f64() && w["after_at_to"].is_f64())
    );
    assert_eq!(report["baseline"]["image_size"].as_u64(), Some(24));
}

#[test]
fn a_siglip_run_stopped_and_resumed_is_the_same_run() {
    let (_dir, model, a, b) = scratch();
    // Stopped inside the main phase; the resumed invocation takes the loss
    // (and the model's bias) from the run's record, not from its own options.
    let args = |out: &Path| staged_train_args(&model, out, &[&TWO_PHASES[..], &["--loss", "siglip"]].concat());
    assert_stopped_and_resumed_is_the_same_run(args, &a, &b, 23, "inside the main phase");
    // The bias is open_clip's logit_bias, trained away from its start; the
    // metrics log it beside the scale.
    let names: Vec<String> = weights(&a.join("model.safetensors")).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.iter().filter(|n| *n == "logit_bias").count(), 1, "{names:?}");
    let last: Value = serde_json::from_str(
        std::fs::read_to_string(a.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .rev()
            .find(|l| l.contains("\"loss\""))
            .unwrap(),
    )
    .unwrap();
    let bias = last["logit_bias"].as_f64().expect("the metrics log the bias");
    assert!(bias != -10.0 && bias.is_finite(), "{last}");
}

#[test]
fn an_accumulating_run_stopped_and_resumed_is_the_same_run() {
    let (_dir, model, a, b) = scratch();
    let args = |out: &Path| staged_train_args(&model, out, &[&TWO_PHASES[..], &["--accum-freq", "2"]].concat());
    assert_stopped_and_resumed_is_the_same_run(args, &a, &b, 47, "in the finetune");
    // Each step saw 2 × 8 pairs, and each sample's towers ran forward twice.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(a.join("report.json")).unwrap()).unwrap();
    assert_eq!((report["accum_freq"].as_u64(), report["batch_size"].as_u64()), (Some(2), Some(8)), "{report}");
    assert_eq!(report["total"]["samples"].as_u64(), Some(16 * STEPS));
    for p in report["phases"].as_array().unwrap() {
        let (forward, training) = (p["gflops_forward"].as_f64().unwrap(), p["gflops_training"].as_f64().unwrap());
        assert!((training / forward - 4.0).abs() < 1e-9, "{p}");
    }
}

#[test]
fn a_patch_dropout_run_stopped_and_resumed_is_the_same_run() {
    // FLIP's schedule: 45 steps keeping 2 of each image's 4 patches, then 15
    // with every patch.
    let (dir, model, a, b) = scratch();
    let flip = ["--stages", "16:0.75,16:0.25", "--patch-dropout", "0.5,0"];
    let args = |out: &Path| staged_train_args(&model, out, &flip);
    assert_stopped_and_resumed_is_the_same_run(args, &a, &b, 23, "inside the dropout stage");

    // The report counts the tokens kept; the baseline trains with the last
    // stage's (no) dropout.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(a.join("report.json")).unwrap()).unwrap();
    let phases = report["phases"].as_array().unwrap();
    let of = |p: &Value| (p["patch_dropout"].as_f64().unwrap(), p["tokens_per_image"].as_u64().unwrap());
    assert_eq!((of(&phases[0]), of(&phases[1])), ((0.5, 3), (0.0, 5)), "{report}");
    let (dropped, full) =
        (phases[0]["gflops_training"].as_f64().unwrap(), phases[1]["gflops_training"].as_f64().unwrap());
    assert!(dropped < full, "{report}");
    assert_eq!(report["baseline"]["patch_dropout"].as_f64(), Some(0.0), "{report}");
    assert_eq!(report["baseline"]["gflops_training"].as_f64(), Some(full), "{report}");

    // Without the dropout, the same schedule trains another model.
    let c = dir.path().join("c");
    let status = reclip().args(staged_train_args(&model, &c, &flip[..2])).status().unwrap();
    assert!(status.success(), "the run without dropout failed");
    assert_ne!(losses(&a)[&1], losses(&c)[&1], "patch dropout changed nothing");
}
