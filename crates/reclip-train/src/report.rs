//! The end-of-run report: per phase and in total, the compute spent (FLOPs,
//! in open_clip's convention) and the time it took; the same for a baseline
//! that trains every step at high resolution (FLOPs counted, time estimated
//! from a timed probe at high resolution); the ratios; the final accuracy.

use crate::eval::{RetrievalResult, ZeroShotResult};
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
    /// Data problems met during the run (skipped samples), one line per kind.
    pub data_problems: Vec<String>,
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

impl Report {
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
            "{:<9} {:>5} {:>5} {:>7} {:>7} {:>9} {:>10} {:>10} {:>9} {:>8} {:>9}",
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
            "images/s"
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
                    ips: f64| {
            let _ = writeln!(
                s,
                "{name:<9} {size:>5} {text:>5} {tokens:>7} {steps:>7} {samples:>9} {fwd:>10} {train:>10} {pf:>9.4} {wall:>8.1} {ips:>9.1}"
            );
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
            );
            let _ = writeln!(
                s,
                "baseline = every step at {}px: FLOPs counted, time estimated from a {}-step probe",
                b.image_size, b.probe_steps
            );
            let _ = writeln!(s, "GF = GFLOPs per sample, both towers (2 per multiply-add); training = 3x forward");
            let _ = writeln!(s, "savings: {:.2}x fewer training FLOPs, {:.2}x less wall time", r.flops, r.wall_time);
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
