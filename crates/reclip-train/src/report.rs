//! The end-of-run report: per phase and in total, the compute spent (FLOPs,
//! in open_clip's convention) and the time it took; the same for a baseline
//! that trains every step at high resolution (FLOPs counted, time estimated
//! from a timed probe at high resolution); the ratios; the final accuracy.

use crate::eval::{RetrievalResult, ZeroShotResult};
use crate::graph_step::GraphsUsed;
use crate::metrics::Line;
use serde::Serialize;

mod build;
mod curve;
mod table;

pub(crate) use build::RunRecord;
pub use curve::{AccuracyCurve, EqualCompute};

#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    pub name: String,
    pub image_size: usize,
    pub text_len: usize,
    /// FLIP's patch dropout probability in training (0: none).
    pub patch_dropout: f64,
    /// The tokens the image transformer sees: the class token and the
    /// patches kept.
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
    /// Of the wall time, rank 0's wait on collectives.
    pub comm_seconds: f64,
    /// Global: every rank's samples.
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
    pub comm_seconds: f64,
    pub images_per_second: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BaselineEstimate {
    pub image_size: usize,
    pub text_len: usize,
    /// The last phase's patch dropout, which the baseline trains with.
    pub patch_dropout: f64,
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
    /// The global batch of one pass (a micro-batch with accumulation).
    pub batch_size: usize,
    /// Passes per optimizer step (`--accum-freq`): the loss saw
    /// `batch_size × accum_freq` pairs a step.
    pub accum_freq: usize,
    /// The loss: "clip" or "siglip".
    pub loss: String,
    /// The ranks that trained, and what carried their collectives.
    pub world_size: usize,
    pub dist_backend: String,
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
    /// How the training data was read: by index, or streamed (with the
    /// shards, readers and shuffle buffer).
    pub data_reader: String,
    /// Data problems met during the run (skipped samples), one line per kind.
    pub data_problems: Vec<String>,
    /// Whether the steps were replayed from CUDA graphs, and why not.
    pub cuda_graphs: GraphsUsed,
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
