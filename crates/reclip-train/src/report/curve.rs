//! Accuracy against compute: a run's zero-shot top-1 as a curve over its
//! training FLOPs, and a run read against a baseline's curve at equal compute.

use super::{EvalPoint, Report};
use serde::Serialize;

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

impl Report {
    /// Top-1 of the first zero-shot set against FLOPs, through the
    /// evaluations at the size the run ends at; `None` without zero-shot sets.
    pub fn accuracy_curve(&self) -> Option<AccuracyCurve> {
        let classes = self.zero_shot.first()?.classes;
        let size = self.phases.last()?.image_size;
        Some(AccuracyCurve::new(&self.evaluations, size, 1.0 / classes.max(1) as f64))
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
