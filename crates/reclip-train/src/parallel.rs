//! One step of data-parallel training, as rank r of k takes it: its slice of
//! the global batch through both towers, this rank's part of the global
//! loss, backward with the parameter gradients averaged over ranks in
//! buckets while it runs, then the same AdamW step as every other rank. For
//! the softmax loss the features of every rank are gathered (with gradient)
//! and the rank takes its rows; for SigLIP's sigmoid loss the text blocks go
//! round the ring (reclip-dist's `ring_shift`), the rank's images meeting
//! each in turn, as open_clip's `SigLipLoss` does. The gradient each rank
//! then holds is that of the global batch's loss; reclip-dist's and
//! reclip-loss's docs give the derivations.

use crate::accumulate::accumulate_gradients;
use crate::options::TrainOptions;
use crate::{AdamW, GraphStep, StepReport};
use reclip_autograd::{Tape, Var};
use reclip_core::{DType, Result, Tensor};
use reclip_dist::{Comm, GradReducer, RingDirection, all_gather, ring_shift};
use reclip_loss::{clip_loss_local, siglip_loss, siglip_loss_negatives};
use reclip_model::Clip;
use reclip_model::patch_dropout::PatchDropout;

/// A rank's part in data-parallel training of one model.
pub struct DataParallel {
    comm: Comm,
    reducer: GradReducer,
}

impl DataParallel {
    /// For `clip`'s parameters, reduced in buckets of `bucket_mib` MiB.
    pub fn new(comm: &Comm, clip: &Clip, bucket_mib: usize) -> Self {
        DataParallel { comm: comm.clone(), reducer: GradReducer::new(comm, &clip.params(), bucket_mib << 20) }
    }

    /// A rank's part in `opts`'s run when it has several ranks.
    pub(crate) fn of_run(opts: &TrainOptions, clip: &Clip) -> Option<Self> {
        (opts.comm.world() > 1).then(|| Self::new(&opts.comm, clip, opts.bucket_mib))
    }

    /// One step on this rank's `images` [b, 3, S, S] and `tokens` [b, L]
    /// (b = B / world), in `micro_batches` passes (open_clip's
    /// `--accum-freq`; 1: none), the patches dropped as `dropout` says (its
    /// first row this rank's in the global batch). The loss returned is
    /// this rank's: the mean over ranks is the global batch's.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        clip: &Clip,
        optimizer: &mut AdamW,
        images: &Tensor,
        tokens: &Tensor,
        dtype: DType,
        lr: f32,
        micro_batches: usize,
        dropout: Option<&PatchDropout>,
    ) -> Result<(Var, StepReport)> {
        let loss = if micro_batches > 1 {
            // The gradients are complete only after the last micro-batch:
            // they are averaged then, without overlapping the backward.
            accumulate_gradients(clip, images, tokens, dtype, micro_batches, dropout, |tape, image, text| {
                self.rank_loss(clip, tape, image, text)
            })?
        } else {
            let tape = Tape::new();
            let image = clip.encode_image_dropping(&tape, images, dtype, dropout)?;
            let text = clip.encode_text(&tape, tokens, dtype)?;
            let loss = self.rank_loss(clip, &tape, &image, &text)?;
            let reducer = &mut self.reducer;
            loss.backward_notify(&mut |param| reducer.ready(param))?;
            loss.detach()
        };
        self.reducer.finish()?;
        let report = optimizer.step(lr)?;
        clip.clamp_logit_scale()?;
        Ok((loss, report))
    }

    /// This rank's part of the global batch's loss.
    fn rank_loss(&self, clip: &Clip, tape: &Tape, image: &Var, text: &Var) -> Result<Var> {
        let log_scale = clip.log_scale(tape);
        let Some(bias) = clip.bias(tape) else {
            let (all_images, all_texts) = (all_gather(&self.comm, image)?, all_gather(&self.comm, text)?);
            return clip_loss_local(image, text, &all_images, &all_texts, self.comm.rank(), &log_scale);
        };
        let mut loss = siglip_loss(image, text, &log_scale, &bias)?;
        let mut block = text.clone();
        for _ in 1..self.comm.world() {
            block = ring_shift(&self.comm, &block, RingDirection::Up)?;
            loss = loss.add(&siglip_loss_negatives(image, &block, &log_scale, &bias)?)?;
        }
        Ok(loss)
    }

    /// The mean over ranks of each rank's `loss`: the global batch's loss.
    pub fn global_loss(&self, loss: f64) -> Result<f64> {
        let all = self.comm.all_gather_f64(&[loss])?;
        Ok(all.iter().sum::<f64>() / all.len() as f64)
    }
}

/// One step of the run, in `micro_batches` passes, with `dropout`'s patch
/// dropout: this rank's part of a
/// data-parallel step with `parallel`, one process's [`crate::train_step`]
/// (replayed from a graph where `graphs` can) or
/// [`crate::step::accumulated_step`] without.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    parallel: Option<&mut DataParallel>,
    graphs: &mut GraphStep,
    clip: &Clip,
    optimizer: &mut AdamW,
    images: &Tensor,
    tokens: &Tensor,
    dtype: DType,
    lr: f32,
    micro_batches: usize,
    dropout: Option<&PatchDropout>,
) -> Result<(Var, StepReport)> {
    match (parallel, micro_batches) {
        (Some(dp), k) => dp.step(clip, optimizer, images, tokens, dtype, lr, k, dropout),
        (None, 1) => graphs.step(clip, optimizer, images, tokens, dtype, lr, dropout),
        (None, k) => crate::step::accumulated_step(clip, optimizer, images, tokens, dtype, lr, k, dropout),
    }
}
