//! Running a target on many inputs. Input `case` of a campaign is a pure
//! function of the target, the seed and `case` (the seeds themselves first,
//! then mutations of them), so any case can be regenerated on its own.
//! Crashing and failing inputs are saved for `--replay`.

use crate::memory::{self, CaseId, MAX_ALLOCATION_BYTES};
use crate::mutate::mutate;
use crate::panics;
use crate::targets::{Target, Verdict};
use crate::views::fingerprint;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Findings of each kind whose message the summary shows.
pub const SHOWN_FINDINGS: usize = 5;

/// Findings of each kind saved to the crash folder; later ones are counted only.
pub const SAVED_FINDINGS: usize = 20;

/// A case running longer than this is a hang: the campaign prints how to
/// reproduce it and stops the process. Every seed runs in milliseconds, even
/// unoptimised, so this is far beyond any honest input.
pub const MAX_CASE_SECONDS: u64 = 60;

#[derive(Clone, Copy, Debug)]
pub enum Budget {
    Cases(u64),
    Time(Duration),
}

pub struct Settings {
    pub seed: u64,
    pub budget: Budget,
    pub crash_dir: PathBuf,
}

/// What one input did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Handled(Verdict),
    /// An invariant broke: the message says which.
    Failed(String),
    /// The code under test panicked: the message and where.
    Crashed(String),
}

/// Runs `target` on one input, catching panics and checking its largest allocation.
pub fn check(target: &Target, input: &[u8], id: CaseId) -> (Outcome, Duration) {
    memory::begin_case(id);
    let start = Instant::now();
    let result = panics::catch(|| (target.run)(input));
    let elapsed = start.elapsed();
    let largest = memory::end_case();
    let outcome = match result {
        Err(panic) => Outcome::Crashed(panic),
        Ok(Err(failure)) => Outcome::Failed(failure),
        Ok(Ok(_)) if largest > MAX_ALLOCATION_BYTES => Outcome::Failed(format!(
            "one allocation of {} MiB for a {}-byte input (limit {} MiB)",
            largest >> 20,
            input.len(),
            MAX_ALLOCATION_BYTES >> 20
        )),
        Ok(Ok(verdict)) => Outcome::Handled(verdict),
    };
    (outcome, elapsed)
}

/// Input `case` of a campaign of `target` with `seed`, from its seed inputs.
pub fn input_for(target: &Target, seeds: &[Vec<u8>], seed: u64, case: u64) -> Vec<u8> {
    if let Some(input) = seeds.get(case as usize) {
        return input.clone();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(fingerprint(target.name.as_bytes(), seed));
    rng.set_stream(case);
    let seed_input = &seeds[rng.random_range(0..seeds.len())];
    if let Some(structured) = target.structured
        && rng.random_bool(0.5)
        && let Some(input) = structured(&mut rng, seed_input)
    {
        return input;
    }
    let mut input = seed_input.clone();
    mutate(&mut rng, &mut input, seeds);
    if let Some(repair) = target.repair
        && rng.random_bool(0.5)
    {
        repair(&mut input);
    }
    input
}

/// One crashing or failing input.
#[derive(Clone, Debug)]
pub struct Finding {
    pub case: u64,
    pub message: String,
    /// Where the input was saved, or why it could not be.
    pub saved: Result<PathBuf, String>,
}

#[derive(Clone, Debug, Default)]
pub struct Findings {
    pub count: u64,
    /// The first [`SAVED_FINDINGS`].
    pub first: Vec<Finding>,
}

impl Findings {
    fn add(&mut self, target: &str, case: u64, input: &[u8], message: String, crash_dir: &Path) {
        self.count += 1;
        if self.first.len() < SAVED_FINDINGS {
            self.first.push(Finding { case, message, saved: save(crash_dir, target, case, input) });
        }
    }
}

/// Saves an input as `<crash_dir>/<target>-<case>.bin`.
pub fn save(crash_dir: &Path, target: &str, case: u64, input: &[u8]) -> Result<PathBuf, String> {
    let path = crash_dir.join(format!("{target}-{case}.bin"));
    std::fs::create_dir_all(crash_dir)
        .and_then(|()| std::fs::write(&path, input))
        .map_err(|e| format!("not saved: {}: {e}", path.display()))?;
    Ok(path)
}

/// A campaign's counts, printed as one line and a line per finding shown.
#[derive(Clone, Debug)]
pub struct Summary {
    pub target: &'static str,
    pub inputs: u64,
    pub accepted: u64,
    pub elapsed: Duration,
    pub crashes: Findings,
    pub failures: Findings,
    pub slowest: Duration,
}

impl Summary {
    pub fn is_clean(&self) -> bool {
        self.crashes.count == 0 && self.failures.count == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let seconds = if seconds < 10.0 { format!("{seconds:.2}") } else { format!("{seconds:.0}") };
        let accepted = 100.0 * self.accepted as f64 / self.inputs.max(1) as f64;
        write!(
            f,
            "{}: {} inputs in {seconds} s ({accepted:.0}% accepted), {} crashes, {} invariant failures, \
             slowest input {} ms",
            self.target,
            self.inputs,
            self.crashes.count,
            self.failures.count,
            self.slowest.as_millis()
        )?;
        for (kind, findings) in [("crash", &self.crashes), ("invariant failure", &self.failures)] {
            for finding in findings.first.iter().take(SHOWN_FINDINGS) {
                let saved = match &finding.saved {
                    Ok(path) => format!("saved to {}", path.display()),
                    Err(e) => e.clone(),
                };
                write!(f, "\n  {kind}, input {} ({saved}): {}", finding.case, finding.message)?;
            }
        }
        Ok(())
    }
}

/// Runs the seeds, then mutated inputs until the budget is spent. A seed
/// that is refused is an invariant failure: the target would not be
/// fuzzing past the first check.
pub fn run(target: &'static Target, settings: &Settings) -> Summary {
    let seeds = (target.seeds)();
    let mut summary = Summary {
        target: target.name,
        inputs: 0,
        accepted: 0,
        elapsed: Duration::ZERO,
        crashes: Findings::default(),
        failures: Findings::default(),
        slowest: Duration::ZERO,
    };
    let start = Instant::now();
    let watch = Watch::default();
    std::thread::scope(|scope| {
        let watchdog = scope.spawn(|| watch.guard(target.name, settings.seed));
        for case in 0.. {
            let spent = match settings.budget {
                Budget::Cases(n) => case >= n,
                Budget::Time(limit) => start.elapsed() >= limit,
            };
            if spent {
                break;
            }
            let input = input_for(target, &seeds, settings.seed, case);
            watch.started(case);
            let (outcome, elapsed) = check(target, &input, CaseId { target: target.name, seed: settings.seed, case });
            watch.finished();
            summary.inputs += 1;
            summary.slowest = summary.slowest.max(elapsed);
            let dir = &settings.crash_dir;
            match outcome {
                Outcome::Handled(Verdict::Accepted) => summary.accepted += 1,
                Outcome::Handled(Verdict::Rejected(reason)) if (case as usize) < seeds.len() => {
                    summary.failures.add(target.name, case, &input, format!("seed input refused: {reason}"), dir)
                }
                Outcome::Handled(Verdict::Rejected(_)) => {}
                Outcome::Failed(message) => summary.failures.add(target.name, case, &input, message, dir),
                Outcome::Crashed(message) => summary.crashes.add(target.name, case, &input, message, dir),
            }
        }
        watch.stop();
        watchdog.thread().unpark();
    });
    summary.elapsed = start.elapsed();
    summary
}

/// The hang detector's view of the case in progress.
#[derive(Default)]
struct Watch {
    /// The case running, plus one (0: none).
    case: AtomicU64,
    /// When it started, in milliseconds since `epoch`.
    since_ms: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
    stopped: AtomicBool,
}

impl Watch {
    fn now_ms(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    fn started(&self, case: u64) {
        self.since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.case.store(case + 1, Ordering::Release);
    }

    fn finished(&self) {
        self.case.store(0, Ordering::Release);
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Wakes every second; a case past [`MAX_CASE_SECONDS`] stops the process.
    fn guard(&self, target: &str, seed: u64) {
        while !self.stopped.load(Ordering::Acquire) {
            std::thread::park_timeout(Duration::from_secs(1));
            let case = self.case.load(Ordering::Acquire);
            let running_ms = self.now_ms().saturating_sub(self.since_ms.load(Ordering::Relaxed));
            if case > 0 && running_ms > MAX_CASE_SECONDS * 1000 && self.case.load(Ordering::Acquire) == case {
                eprintln!(
                    "reclip-fuzz: {target} input {} has run for over {MAX_CASE_SECONDS} s; \
                     save and rerun it with `reclip-fuzz {target} --seed {seed} --case {}`",
                    case - 1,
                    case - 1
                );
                std::process::exit(2);
            }
        }
    }
}
