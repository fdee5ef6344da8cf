//! The end-of-run report: per phase and in total, the compute spent (FLOPs,
//! in open_clip's convention) and the time it took; the same for a baseline
//! that trains every step at high resolution (FLOPs counted, time estimated
//! from a timed probe at high resolution); the ratios; the final accuracy.

use crate::eval::{RetrievalResult, ZeroShotResult};
use crate::metrics::Line;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    pub name: String,
    pub image_size: usize,
    pub text_len: usize,
    pub tokens_per_image: usize,
    pub steps: u64,
    pub samples: u64,
    /// Per sample, both towers: forward matmul GFLOPs.
    pub gflops_forward: f64,
    /// Per sample: training = 3 × forward.
    pub gflops_training: f64,
    /// Per sample: elementwise work (LayerNorm, softmax, activations, adds), forward.
    pub gflops_elementwise_forward: f64,
    pub total_pflops: f64,
    pub wall_seconds: f64,
    pub images_per_second: f64,
    /// Zero-shot top-1 (first set) at the phase's end, at its image size.
    pub zero_shot_top1: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub steps: u64,
    pub samples: u64,
    pub total_pflops: f64,
    pub wall_seconds: f64,
    pub images_per_second: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BaselineEstimate {
    pub image_size: usize,
    pub text_len: usize,
    pub steps: u64,
    pub samples: u64,
    pub gflops_training: f64,
    pub total_pflops: f64,
    /// Images per second measured by a short timed probe at high resolution.
    pub probe_images_per_second: f64,
    pub probe_steps: usize,
    pub estimated_wall_seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Ratios {
    /// Baseline training FLOPs over this run's.
    pub flops: f64,
    /// Baseline (estimated) wall time over this run's.
    pub wall_time: f64,
}

/// Zero-shot top-1 (the first set) around a switch of image size: the
/// previous phase's model at its own size and at the new one, right before
/// the switch, and the new phase's model at the new size at its end.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SwitchReport {
    pub step: u64,
    pub from_size: usize,
    pub to_size: usize,
    pub before_at_from: Option<f64>,
    pub before_at_to: Option<f64>,
    /// After the new phase's steps.
    pub after_at_to: Option<f64>,
    pub after_step: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub device: String,
    pub precision: String,
    pub schedule: String,
    pub batch_size: usize,
    pub phases: Vec<PhaseReport>,
    pub total: Totals,
    /// Present when the run was not itself the baseline.
    pub baseline: Option<BaselineEstimate>,
    pub ratios: Option<Ratios>,
    pub zero_shot: Vec<ZeroShotResult>,
    pub retrieval: Vec<RetrievalResult>,
    /// One per change of image size, in order.
    pub switches: Vec<SwitchReport>,
    /// Every evaluation of the run, in order (two at a switch: the previous
    /// phase's size, then the new one).
    pub evaluations: Vec<EvalPoint>,
    /// Data problems met during the run (skipped samples), one line per kind.
    pub data_problems: Vec<String>,
}

/// One evaluation: where the run stood and its zero-shot top-1 on the first set.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EvalPoint {
    pub step: u64,
    pub train_pflops: f64,
    pub wall_seconds: f64,
    pub image_size: usize,
    pub top1: f64,
}

/// Top-1 of the last evaluation of `step` at `image_size`, if there was one.
pub fn top1_at(evaluations: &[EvalPoint], step: u64, image_size: usize) -> Option<f64> {
    evaluations.iter().rev().find(|e| e.step == step && e.image_size == image_size).map(|e| e.top1)
}

/// The evaluations in a run's metrics that have a zero-shot result.
pub fn evaluations(lines: &[Line]) -> Vec<EvalPoint> {
    lines
        .iter()
        .filter_map(|l| match l {
            Line::Eval(e) => e.zero_shot.first().map(|z| EvalPoint {
                step: e.step,
                train_pflops: e.train_pflops,
                wall_seconds: e.wall_seconds,
                image_size: e.image_size,
                top1: z.top1,
            }),
            Line::Step(_) => None,
        })
        .collect()
}

/// Zero-shot top-1 against training PFLOPs, piecewise linear through a run's
/// evaluations.
#[derive(Clone, Debug)]
pub struct AccuracyCurve {
    /// (PFLOPs, top-1), sorted by PFLOPs.
    points: Vec<(f64, f64)>,
}

impl AccuracyCurve {
    /// The curve through the evaluations at `image_size`. No run evaluates
    /// before its first step, so the curve starts from an untrained model's
    /// accuracy, `chance`, at no FLOPs.
    pub fn new(evaluations: &[EvalPoint], image_size: usize, chance: f64) -> Self {
        let mut points = vec![(0.0, chance)];
        points.extend(evaluations.iter().filter(|e| e.image_size == image_size).map(|e| (e.train_pflops, e.top1)));
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        AccuracyCurve { points }
    }

    /// Top-1 after `pflops`, interpolated between the evaluations around it;
    /// past the last evaluation, the last one's.
    pub fn top1_at(&self, pflops: f64) -> f64 {
        match self.points.iter().position(|&(x, _)| x >= pflops) {
            None => self.points.last().expect("the curve starts at chance").1,
            Some(0) => self.points[0].1,
            Some(i) => interpolate(self.points[i - 1], self.points[i], pflops),
        }
    }

    /// The PFLOPs at which the curve first reaches `top1`, interpolated;
    /// `None` when no evaluation reaches it.
    pub fn pflops_to_reach(&self, top1: f64) -> Option<f64> {
        let swap = |(x, y): (f64, f64)| (y, x);
        match self.points.iter().position(|&(_, y)| y >= top1)? {
            0 => Some(self.points[0].0),
            // Between a point below `top1` and one at or above it, so the accuracies differ.
            i => Some(interpolate(swap(self.points[i - 1]), swap(self.points[i]), top1)),
        }
    }
}

/// The value at `x` of the line through `a` and `b` (with `a.0 < b.0`).
fn interpolate(a: (f64, f64), b: (f64, f64), x: f64) -> f64 {
    a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0)
}

/// A run against a fully trained baseline at the run's compute, read off
/// the baseline's evaluations (zero-shot top-1, first set).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EqualCompute {
    pub run_pflops: f64,
    /// The run's final top-1.
    pub run_top1: f64,
    /// The baseline's top-1 after the run's FLOPs, interpolated.
    pub baseline_top1: f64,
    /// The FLOPs the baseline needed to first reach the run's final top-1;
    /// `None` when it never did.
    pub baseline_pflops_to_reach: Option<f64>,
    /// Those FLOPs over the run's.
    pub baseline_flops_ratio_to_reach: Option<f64>,
}

impl EqualCompute {
    /// `None` when either run has no zero-shot result.
    pub fn of(baseline: &Report, run: &Report) -> Option<Self> {
        let curve = baseline.accuracy_curve()?;
        let (run_pflops, run_top1) = (run.total.total_pflops, run.zero_shot.first()?.top1);
        let reach = curve.pflops_to_reach(run_top1);
        Some(EqualCompute {
            run_pflops,
            run_top1,
            baseline_top1: curve.top1_at(run_pflops),
            baseline_pflops_to_reach: reach,
            baseline_flops_ratio_to_reach: reach.map(|p| p / run_pflops.max(1e-30)),
        })
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

impl Report {
    /// Top-1 of the first zero-shot set against FLOPs, through the
    /// evaluations at the size the run ends at; `None` without zero-shot sets.
    pub fn accuracy_curve(&self) -> Option<AccuracyCurve> {
        let classes = self.zero_shot.first()?.classes;
        let size = self.phases.last()?.image_size;
        Some(AccuracyCurve::new(&self.evaluations, size, 1.0 / classes.max(1) as f64))
    }

    /// The report as the table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "reclip report — model {}, {} schedule, batch {}, {} on {}",
            self.model, self.schedule, self.batch_size, self.precision, self.device
        );
        let _ = writeln!(
            s,
            "{:<9} {:>5} {:>5} {:>7} {:>7} {:>9} {:>10} {:>10} {:>9} {:>8} {:>9} {:>6}",
            "phase",
            "image",
            "text",
            "tokens",
            "steps",
            "samples",
            "GF fwd",
            "GF train",
            "PFLOPs",
            "wall s",
            "images/s",
            "top-1"
        );
        let line = |s: &mut String,
                    name: &str,
                    size: String,
                    text: String,
                    tokens: String,
                    steps: u64,
                    samples: u64,
                    fwd: String,
                    train: String,
                    pf: f64,
                    wall: f64,
                    ips: f64,
                    top1: Option<f64>| {
            let top1 = top1.map_or(String::new(), pct);
            let row = format!(
                "{name:<9} {size:>5} {text:>5} {tokens:>7} {steps:>7} {samples:>9} {fwd:>10} {train:>10} {pf:>9.4} {wall:>8.1} {ips:>9.1} {top1:>6}"
            );
            let _ = writeln!(s, "{}", row.trim_end());
        };
        for p in &self.phases {
            line(
                &mut s,
                &p.name,
                p.image_size.to_string(),
                p.text_len.to_string(),
                p.tokens_per_image.to_string(),
                p.steps,
                p.samples,
                format!("{:.4}", p.gflops_forward),
                format!("{:.4}", p.gflops_training),
                p.total_pflops,
                p.wall_seconds,
                p.images_per_second,
                p.zero_shot_top1,
            );
        }
        let t = &self.total;
        line(
            &mut s,
            "total",
            "".into(),
            "".into(),
            "".into(),
            t.steps,
            t.samples,
            "".into(),
            "".into(),
            t.total_pflops,
            t.wall_seconds,
            t.images_per_second,
            None,
        );
        if let (Some(b), Some(r)) = (&self.baseline, &self.ratios) {
            line(
                &mut s,
                "baseline",
                b.image_size.to_string(),
                b.text_len.to_string(),
                "".into(),
                b.steps,
                b.samples,
                "".into(),
                format!("{:.4}", b.gflops_training),
                b.total_pflops,
                b.estimated_wall_seconds,
                b.probe_images_per_second,
                None,
            );
            let _ = writeln!(
                s,
                "baseline = every step at {}px: FLOPs counted, time estimated from a {}-step probe",
                b.image_size, b.probe_steps
            );
            let _ = writeln!(s, "GF = GFLOPs per sample, both towers (2 per multiply-add); training = 3x forward");
            let _ = writeln!(s, "savings: {:.2}x fewer training FLOPs, {:.2}x less wall time", r.flops, r.wall_time);
        }
        if self.phases.iter().any(|p| p.zero_shot_top1.is_some()) {
            let _ = writeln!(s, "top-1 = zero-shot top-1 of the first set at the phase's end, at its image size");
        }
        for z in &self.zero_shot {
            let _ = writeln!(
                s,
                "zero-shot {} ({} classes, {} images): top-1 {}, top-5 {}",
                z.name,
                z.classes,
                z.images,
                pct(z.top1),
                pct(z.top5)
            );
        }
        let maybe = |x: Option<f64>| x.map_or("-".to_string(), pct);
        for w in &self.switches {
            let _ = writeln!(
                s,
                "switch at step {} ({} → {} px): zero-shot top-1 before {} at {} px, {} at {} px; after {} at {} px (step {})",
                w.step,
                w.from_size,
                w.to_size,
                maybe(w.before_at_from),
                w.from_size,
                maybe(w.before_at_to),
                w.to_size,
                maybe(w.after_at_to),
                w.to_size,
                w.after_step
            );
        }
        for r in &self.retrieval {
            let [a, b, c] = r.image_to_text;
            let [d, e, f] = r.text_to_image;
            let _ = writeln!(
                s,
                "retrieval {} ({} pairs): image→text R@1/5/10 {}/{}/{}, text→image {}/{}/{}",
                r.name,
                r.pairs,
                pct(a),
                pct(b),
                pct(c),
                pct(d),
                pct(e),
                pct(f)
            );
        }
        for p in &self.data_problems {
            let _ = writeln!(s, "data: {p}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(train_pflops: f64, image_size: usize, top1: f64) -> EvalPoint {
        EvalPoint { step: 0, train_pflops, wall_seconds: 0.0, image_size, top1 }
    }

    /// Evaluations at 1, 2 and 4 PFLOPs at 64 px, with one at 32 px to ignore.
    fn curve() -> AccuracyCurve {
        let evals = [point(1.0, 64, 0.4), point(2.0, 64, 0.6), point(3.0, 32, 0.99), point(4.0, 64, 0.8)];
        AccuracyCurve::new(&evals, 64, 0.1)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn accuracy_between_evaluations_is_interpolated() {
        let c = curve();
        assert!(close(c.top1_at(1.5), 0.5));
        assert!(close(c.top1_at(3.0), 0.7));
        assert!(close(c.top1_at(2.0), 0.6));
    }

    #[test]
    fn accuracy_before_the_first_evaluation_rises_from_chance() {
        let c = curve();
        assert!(close(c.top1_at(0.0), 0.1));
        assert!(close(c.top1_at(0.5), 0.25));
    }

    #[test]
    fn accuracy_after_the_last_evaluation_is_the_last() {
        assert!(close(curve().top1_at(9.0), 0.8));
    }

    #[test]
    fn flops_to_reach_an_accuracy_are_interpolated_or_none() {
        let c = curve();
        assert!(close(c.pflops_to_reach(0.5).unwrap(), 1.5));
        assert!(close(c.pflops_to_reach(0.6).unwrap(), 2.0));
        assert!(close(c.pflops_to_reach(0.25).unwrap(), 0.5));
        assert!(close(c.pflops_to_reach(0.05).unwrap(), 0.0));
        assert_eq!(c.pflops_to_reach(0.81), None);
    }

    #[test]
    fn the_first_time_an_accuracy_is_reached_counts() {
        let evals = [point(1.0, 64, 0.6), point(2.0, 64, 0.4), point(3.0, 64, 0.8)];
        let c = AccuracyCurve::new(&evals, 64, 0.0);
        assert!(close(c.pflops_to_reach(0.5).unwrap(), 5.0 / 6.0));
    }
}
