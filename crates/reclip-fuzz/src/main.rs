//! `reclip-fuzz`: runs fuzz campaigns, replays saved inputs and regenerates
//! single cases (see the library's documentation).

use clap::Parser;
use reclip_fuzz::campaign::{self, Budget, Outcome, Settings};
use reclip_fuzz::memory::{CaseId, GuardedAllocator};
use reclip_fuzz::{TARGETS, Target, Verdict};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: GuardedAllocator = GuardedAllocator;

/// Seconds per target when no budget is given.
const DEFAULT_SECONDS: u64 = 60;

#[derive(Parser)]
#[command(name = "reclip-fuzz", about = "Fuzz reclip's readers of files, strings and images")]
struct Args {
    /// csv, tar, brace, checkpoint, config, tokenizer, image, or all.
    target: String,
    /// Fuzz each target for this long [default: 60].
    #[arg(long, conflicts_with = "cases")]
    seconds: Option<f64>,
    /// Fuzz each target on this many inputs, the seeds first.
    #[arg(long)]
    cases: Option<u64>,
    /// Picks the mutations; the same seed gives the same inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Targets fuzzed at once with `all` [default: the number of cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// Runs the target once on this file's bytes.
    #[arg(long, conflicts_with_all = ["seconds", "cases", "case"])]
    replay: Option<PathBuf>,
    /// Regenerates input N of --seed, saves it to the crash folder and runs it.
    #[arg(long, value_name = "N", conflicts_with_all = ["seconds", "cases"])]
    case: Option<u64>,
    /// Where crashing and failing inputs are saved [default: target/fuzz-crashes].
    #[arg(long)]
    crash_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("reclip-fuzz: {message}");
            ExitCode::from(2)
        }
    }
}

/// Whether every input was handled.
fn run(args: &Args) -> Result<bool, String> {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    let targets: Vec<&'static Target> = match args.target.as_str() {
        "all" => TARGETS.iter().collect(),
        name => vec![
            reclip_fuzz::target(name)
                .ok_or_else(|| format!("unknown target {name:?}; the targets are {} (or all)", names.join(", ")))?,
        ],
    };
    let crash_dir = args.crash_dir.clone().unwrap_or_else(default_crash_dir);
    let single = |what: &str| match targets.as_slice() {
        [target] => Ok(*target),
        _ => Err(format!("{what} needs one target, not all")),
    };
    if let Some(file) = &args.replay {
        let input = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        return Ok(replay(single("--replay")?, &input, file, args.seed, 0));
    }
    if let Some(case) = args.case {
        let target = single("--case")?;
        let seeds = on_own_thread(|| (target.seeds)());
        let input = campaign::input_for(target, &seeds, args.seed, case);
        let path = campaign::save(&crash_dir, target.name, case, &input)?;
        return Ok(replay(target, &input, &path, args.seed, case));
    }
    let budget = match (args.cases, args.seconds) {
        (Some(n), _) => Budget::Cases(n),
        (None, Some(s)) => Budget::Time(
            Duration::try_from_secs_f64(s).map_err(|_| format!("--seconds {s} is not a duration in seconds"))?,
        ),
        (None, None) => Budget::Time(Duration::from_secs(DEFAULT_SECONDS)),
    };
    let settings = Settings { seed: args.seed, budget, crash_dir };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.unwrap_or(cores).clamp(1, targets.len());
    Ok(fuzz(&targets, &settings, jobs))
}

/// Runs the targets on `jobs` threads, printing each summary as it finishes.
fn fuzz(targets: &[&'static Target], settings: &Settings, jobs: usize) -> bool {
    let next = AtomicUsize::new(0);
    let clean = Mutex::new(true);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while let Some(&target) = targets.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let summary = campaign::run(target, settings);
                    println!("{summary}");
                    if !summary.is_clean() {
                        *clean.lock().unwrap_or_else(|e| e.into_inner()) = false;
                    }
                }
            });
        }
    });
    clean.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Runs one input and prints what it did; false if it failed or crashed.
fn replay(target: &'static Target, input: &[u8], file: &Path, seed: u64, case: u64) -> bool {
    let (outcome, elapsed) =
        on_own_thread(|| campaign::check(target, input, CaseId { target: target.name, seed, case }));
    let what = match &outcome {
        Outcome::Handled(Verdict::Accepted) => "accepted".to_string(),
        Outcome::Handled(Verdict::Rejected(reason)) => format!("refused: {reason}"),
        Outcome::Failed(message) => format!("INVARIANT FAILURE: {message}"),
        Outcome::Crashed(message) => format!("CRASH: {message}"),
    };
    println!("{}: {} ({} bytes, {} ms): {what}", target.name, file.display(), input.len(), elapsed.as_millis());
    matches!(outcome, Outcome::Handled(_))
}

/// Runs `f` on a new thread, whose temporary folder is removed when it ends
/// (the main thread's is not: its thread-locals are not dropped at exit).
fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
}

/// `target/fuzz-crashes` in Cargo's target folder.
fn default_crash_dir() -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap_or(Path::new(".")).join("target")
    });
    target_dir.join("fuzz-crashes")
}
