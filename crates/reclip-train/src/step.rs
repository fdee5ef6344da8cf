//! One training step, as open_clip's loop does it: both towers forward, the
//! contrastive loss, backward, the optimizer, the temperature clamp. The
//! loss is the model's: SigLIP's sigmoid loss for a model with a logit bias
//! (`--loss siglip`), CLIP's softmax loss otherwise.

use crate::accumulate::accumulate_gradients;
use crate::{AdamW, StepReport};
use reclip_autograd::{Tape, Var};
use reclip_core::{DType, Indices, Result, Tensor};
use reclip_loss::{clip_loss, siglip_loss};
use reclip_model::Clip;
use reclip_model::patch_dropout::PatchDropout;

/// One step on `images` [B, 3, S, S] and token ids [B, L], both on the host
/// as the loader makes them, the images' patches dropped as `dropout` says
/// (FLIP). On a GPU it queues work and returns: the only transfers are the
/// batch's uploads, and the loss (a device scalar) and the step report's
/// gradient norm stay on the device until read.
pub fn train_step(
    clip: &Clip,
    optimizer: &mut AdamW,
    images: &Tensor,
    tokens: &Tensor,
    dtype: DType,
    lr: f32,
    dropout: Option<&PatchDropout>,
) -> Result<(Var, StepReport)> {
    let (tokens, eot) = clip.text_indices(tokens)?;
    let kept = clip.kept_indices(images, dropout)?;
    step_on(clip, images, &tokens, &eot, kept.as_ref(), dtype, || optimizer.step(lr))
}

/// The step on images, prepared text indices (see [`Clip::text_indices`])
/// and, under patch dropout, the image tokens kept ([`Clip::kept_indices`]),
/// `update` being the optimizer's part: what [`train_step`] runs, and what
/// a graph step records.
pub(crate) fn step_on(
    clip: &Clip,
    images: &Tensor,
    tokens: &Indices,
    eot: &Indices,
    kept: Option<&Indices>,
    dtype: DType,
    update: impl FnOnce() -> Result<StepReport>,
) -> Result<(Var, StepReport)> {
    let tape = Tape::new();
    let image = clip.encode_image_kept(&tape, images, dtype, kept)?;
    let text = clip.encode_text_indices(&tape, tokens, eot, dtype)?;
    let loss = batch_loss(clip, &tape, &image, &text)?;
    loss.backward()?;
    let report = update()?;
    clip.clamp_logit_scale()?;
    Ok((loss.detach(), report))
}

/// [`train_step`] with the loss of the whole batch taken over `micro_batches`
/// passes of its rows ([`crate::accumulate`]): open_clip's `--accum-freq`.
#[allow(clippy::too_many_arguments)]
pub fn accumulated_step(
    clip: &Clip,
    optimizer: &mut AdamW,
    images: &Tensor,
    tokens: &Tensor,
    dtype: DType,
    lr: f32,
    micro_batches: usize,
    dropout: Option<&PatchDropout>,
) -> Result<(Var, StepReport)> {
    let loss = accumulate_gradients(clip, images, tokens, dtype, micro_batches, dropout, |tape, image, text| {
        batch_loss(clip, tape, image, text)
    })?;
    let report = optimizer.step(lr)?;
    clip.clamp_logit_scale()?;
    Ok((loss, report))
}

/// The contrastive loss of one batch's features under `clip`'s objective.
pub(crate) fn batch_loss(clip: &Clip, tape: &Tape, image: &Var, text: &Var) -> Result<Var> {
    match clip.bias(tape) {
        Some(bias) => siglip_loss(image, text, &clip.log_scale(tape), &bias),
        None => clip_loss(image, text, &clip.log_scale(tape)),
    }
}
