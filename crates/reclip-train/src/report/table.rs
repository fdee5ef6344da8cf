//! The report as the table a run prints at its end.

use super::Report;
use std::fmt::Write as _;

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

impl Report {
    /// The report as the table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let ranks = match self.world_size {
            1 => String::new(),
            k => format!(" × {k} ranks over {}", self.dist_backend),
        };
        let batch = match self.accum_freq {
            1 => self.batch_size.to_string(),
            k => format!("{} ({k} × {})", k * self.batch_size, self.batch_size),
        };
        let _ = writeln!(
            s,
            "reclip report — model {}, {} schedule, {} loss, batch {batch}, {} on {}{ranks}",
            self.model, self.schedule, self.loss, self.precision, self.device
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
        if self.phases.iter().any(|p| p.patch_dropout > 0.0) {
            let each: Vec<String> = self.phases.iter().map(|p| format!("{} {}", p.name, p.patch_dropout)).collect();
            let _ = writeln!(s, "patch dropout: {} (tokens: the class token and the patches kept)", each.join(", "));
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
        if self.world_size > 1 {
            let _ = writeln!(
                s,
                "ranks: {} over {}; images/s are global; rank 0 waited {:.1} s of its {:.1} s on collectives ({})",
                self.world_size,
                self.dist_backend,
                t.comm_seconds,
                t.wall_seconds,
                pct(t.comm_seconds / t.wall_seconds.max(1e-9))
            );
        }
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
            let _ = writeln!(
                s,
                "savings: {}, {}",
                saving(r.flops, "fewer", "training FLOPs"),
                saving(r.wall_time, "less", "wall time")
            );
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
        let g = &self.cuda_graphs;
        let graphs = match (&g.plain_because, g.used) {
            (None, _) => format!("on ({} steps replayed)", g.replayed_steps),
            (Some(why), false) => format!("off ({why})"),
            (Some(why), true) => format!("on for {} steps, then off ({why})", g.replayed_steps),
        };
        let _ = writeln!(s, "CUDA graphs: {graphs}");
        let _ = writeln!(s, "data: {}", self.data_reader);
        for p in &self.data_problems {
            let _ = writeln!(s, "data: {p}");
        }
        s
    }
}

/// A baseline-over-run ratio as a saving ("2.50x fewer training FLOPs"), or
/// as a cost when the run spent more ("1.25x more wall time"): never a
/// saving below 1x.
fn saving(ratio: f64, fewer: &str, what: &str) -> String {
    if ratio >= 1.0 { format!("{ratio:.2}x {fewer} {what}") } else { format!("{:.2}x more {what}", 1.0 / ratio) }
}
