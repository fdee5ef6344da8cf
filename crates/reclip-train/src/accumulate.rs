//! Gradient accumulation as open_clip's `--accum-freq K` does it, exactly:
//! the contrastive loss sees the whole step's K micro-batches at once while
//! activation memory follows one micro-batch.
//!
//! 1. Each micro-batch's towers run forward on a tape of their own, which is
//!    dropped at once: only the features are kept (K·b rows of d).
//! 2. The loss of all K·b pairs, on a tape whose leaves are those features
//!    (and the temperature, and SigLIP's bias); its backward gives
//!    d(loss)/d(features) and the scalars' gradients.
//! 3. Each micro-batch's towers run forward again, now to be differentiated:
//!    the backward of Σ features ⊙ d(loss)/d(features) (whose gradient with
//!    respect to the features is exactly d(loss)/d(features)) adds that
//!    micro-batch's share into the parameters' gradients.
//!
//! The parameters' gradients are then those of the K·b batch's loss, up to
//! the order of float additions; each sample's towers run forward twice, so
//! a step costs 4× the forward FLOPs instead of 3× (the run's FLOPs count
//! it: [`crate::options::TrainOptions::flops`]).

use reclip_autograd::{Tape, Var};
use reclip_core::{DType, Error, Result, Tensor};
use reclip_model::Clip;
use reclip_model::patch_dropout::PatchDropout;

/// Rows `j·m .. (j+1)·m` of `t`, contiguous.
fn micro_batch(t: &Tensor, j: usize, m: usize) -> Result<Tensor> {
    t.narrow(0, j * m, m)?.contiguous()
}

/// Accumulates into `clip`'s parameters the gradient of the loss of
/// `images` [K·m, 3, S, S] and `tokens` [K·m, L] taken as one batch, in
/// `micro_batches` = K passes of m rows, with the patch dropout of the
/// whole batch (each image keeps the same patches in both its passes);
/// `loss_of` is the loss of the whole batch's features (on the tape it is
/// given). Returns that loss.
pub fn accumulate_gradients(
    clip: &Clip,
    images: &Tensor,
    tokens: &Tensor,
    dtype: DType,
    micro_batches: usize,
    dropout: Option<&PatchDropout>,
    loss_of: impl FnOnce(&Tape, &Var, &Var) -> Result<Var>,
) -> Result<Var> {
    let rows = images.dims().first().copied().unwrap_or(0);
    if micro_batches == 0 || !rows.is_multiple_of(micro_batches) || tokens.dims().first() != Some(&rows) {
        return Err(Error::invalid(
            "accumulate",
            format!(
                "{rows} images and {:?} token rows do not split into {micro_batches} equal micro-batches",
                tokens.dims()
            ),
        ));
    }
    let m = rows / micro_batches;
    let towers = |tape: &Tape, j: usize| -> Result<(Var, Var)> {
        let dropout = dropout.map(|d| d.from_row(j * m));
        let image = clip.encode_image_dropping(tape, &micro_batch(images, j, m)?, dtype, dropout.as_ref())?;
        Ok((image, clip.encode_text(tape, &micro_batch(tokens, j, m)?, dtype)?))
    };
    let (mut image_features, mut text_features) =
        (Vec::with_capacity(micro_batches), Vec::with_capacity(micro_batches));
    for j in 0..micro_batches {
        let (image, text) = towers(&Tape::new(), j)?;
        image_features.push(image.tensor().clone());
        text_features.push(text.tensor().clone());
    }
    let concat = |parts: &[Tensor]| Tensor::concat(&parts.iter().collect::<Vec<_>>(), 0);
    let tape = Tape::new();
    let (image, text) = (tape.input(concat(&image_features)?), tape.input(concat(&text_features)?));
    drop((image_features, text_features));
    let loss = loss_of(&tape, &image, &text)?;
    let grads = loss.backward()?;
    let take = |v: &Var| {
        grads.get(v).cloned().ok_or_else(|| Error::invalid("accumulate", "the loss has no gradient for the features"))
    };
    let (d_image, d_text) = (take(&image)?, take(&text)?);
    for j in 0..micro_batches {
        let tape = Tape::new();
        let (image, text) = towers(&tape, j)?;
        let share = |features: &Var, d: &Tensor| features.mul(&Var::constant(micro_batch(d, j, m)?))?.sum_all();
        share(&image, &d_image)?.add(&share(&text, &d_text)?)?.backward()?;
    }
    Ok(loss.detach())
}
