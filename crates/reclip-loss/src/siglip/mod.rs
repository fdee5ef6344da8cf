//! SigLIP's pairwise sigmoid loss (Zhai et al. 2023; open_clip's
//! `SigLipLoss`, big_vision's `sigmoid` loss), fused and tiled like the
//! softmax loss: memory is O(B·d), no B×B matrix of logits exists.
//!
//! # Definition
//!
//! For image features X ([m, d]) and text features Y ([n, d]), projected but
//! not normalised, the log-temperature t and the bias β (open_clip's
//! `logit_scale` and `logit_bias`, initialised to ln 10 and −10):
//!
//! - x̂_i, ŷ_j as for the softmax loss (`F.normalize`);
//! - s = exp(min(t, ln 100)), z_ij = s·x̂_i·ŷ_j + β;
//! - y_ij = +1 for a matching pair, −1 for every other;
//! - loss = (1/m)·Σ_ij softplus(−y_ij·z_ij) = −(1/m)·Σ_ij log σ(y_ij·z_ij).
//!
//! [`siglip_loss`] is the loss of one batch, its matching pairs on the
//! diagonal (m = n = B). [`siglip_loss_negatives`] is the same sum over a
//! block of texts none of which match (all y = −1), still divided by the
//! image rows m: with k ranks of b rows, rank r's loss is its images against
//! its own texts plus, for each other rank's block of texts passed to it
//! round a ring (reclip-dist's `ring_shift`), its images against that
//! block — open_clip's `SigLipLoss` with `world_size` > 1. The mean over
//! ranks of those losses is the single-rank loss of the whole batch of k·b
//! pairs, and the ring shift's backward returns each text block's gradient
//! to its owner, so data-parallel averaging gives the whole batch's gradient.
//! No rank ever holds more than its own and one received block of texts.
//!
//! d(loss)/dz_ij = −(1/m)·y_ij·σ(−y_ij·z_ij); d(loss)/dt = s·Σ_ij dz_ij·x̂_i·ŷ_j
//! where t ≤ ln 100 (zero where the clamp is active, as for the softmax
//! loss); d(loss)/dβ = Σ_ij dz_ij.
//!
//! # How it runs
//!
//! The forward normalises both sides (f32, or f64 for f64 inputs) and sweeps
//! the logits once, per row block of images against all texts, keeping a
//! sum per row; the backward recomputes the tiles in one sweep per side, each
//! writing its own side's gradient rows (the image sweep also the per-row
//! sums for dt and dβ), then goes back through the normalisations. Sums run
//! in a fixed order: results are deterministic. CPU: `cpu` (rayon, the
//! softmax loss's tiles); GPU: kernels/siglip_loss.cu.

mod cpu;
mod gpu;
mod ops;

use crate::check::{self, LogScale};
use crate::primitives::{self, Normalized, compute_dtype};
use reclip_autograd::{Op, Var};
use reclip_core::{DType, Error, Result, Tensor};

const OP: &str = "siglip_loss";

/// Where a block's matching pairs are: text j matches image i when j = i + offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pairs {
    Diagonal,
    None,
}

impl Pairs {
    /// The kernels' label offset for rows of one side against `cols` rows of
    /// the other: 0 on the diagonal; `cols`, which no column reaches, for none.
    fn offset(self, cols: usize) -> isize {
        match self {
            Pairs::Diagonal => 0,
            Pairs::None => cols as isize,
        }
    }
}

/// What [`siglip_loss_backward`] needs, O((m + n)·d): both sides normalised
/// and their norms.
pub struct SiglipSaved {
    image: Normalized,
    text: Normalized,
    log_scale: LogScale,
    bias: LogScale,
    pairs: Pairs,
    dtype: DType,
}

/// Gradients of the loss, each in its input's dtype and shape.
pub struct SiglipGrads {
    pub image: Tensor,
    pub text: Tensor,
    pub log_scale: Tensor,
    pub bias: Tensor,
}

fn forward(
    image: &Tensor,
    text: &Tensor,
    log_scale: &Tensor,
    bias: &Tensor,
    pairs: Pairs,
) -> Result<(Tensor, SiglipSaved)> {
    let (m, d) = check::features(OP, "image_features", image)?;
    let (n, text_d) = check::features(OP, "text_features", text)?;
    if text_d != d || (pairs == Pairs::Diagonal && n != m) {
        let want = if pairs == Pairs::Diagonal { "the same shape" } else { "the same width" };
        return Err(Error::invalid(
            OP,
            format!("image_features {} and text_features {} must have {want}", image.shape(), text.shape()),
        ));
    }
    check::same_kind(OP, &[("image_features", image), ("text_features", text)])?;
    let log_scale = LogScale::new(OP, log_scale, image)?;
    let bias = LogScale::named(OP, "logit_bias", bias, image)?;
    let image_n = primitives::normalize(&image.contiguous()?)?;
    let text_n = primitives::normalize(&text.contiguous()?)?;
    let rows = ops::rows(&image_n.hat, &text_n.hat, &log_scale.value, &bias.value, pairs.offset(n))?;
    let loss = ops::total(&rows, 1.0 / m as f64, None)?.reshape([])?;
    let saved = SiglipSaved { image: image_n, text: text_n, log_scale, bias, pairs, dtype: image.dtype() };
    Ok((loss, saved))
}

/// The loss of one batch (shape []; f32 for f32 and bf16 features, f64 for
/// f64), its matching pairs on the diagonal, and what the backward needs.
pub fn siglip_loss_forward(
    image: &Tensor,
    text: &Tensor,
    log_scale: &Tensor,
    bias: &Tensor,
) -> Result<(Tensor, SiglipSaved)> {
    forward(image, text, log_scale, bias, Pairs::Diagonal)
}

/// The loss of images against a block of texts none of which match them.
pub fn siglip_loss_negatives_forward(
    image: &Tensor,
    text: &Tensor,
    log_scale: &Tensor,
    bias: &Tensor,
) -> Result<(Tensor, SiglipSaved)> {
    forward(image, text, log_scale, bias, Pairs::None)
}

/// Gradients of `grad_loss · loss` with respect to the image features, the
/// text features, the log-temperature and the bias.
pub fn siglip_loss_backward(saved: &SiglipSaved, grad_loss: &Tensor) -> Result<SiglipGrads> {
    let g = check::upstream(OP, grad_loss, compute_dtype(saved.dtype))?;
    let (t, b) = (&saved.log_scale.value, &saved.bias.value);
    let (m, n) = (saved.image.hat.dims()[0], saved.text.hat.dims()[0]);
    let weight = 1.0 / m as f64;
    let sweep = |a, c, label_offset, sums| {
        ops::GradRows { a, c, log_scale: t, bias: b, grad: &g, weight, label_offset, sums }.compute()
    };
    // Each side's gradient goes back through its normalisation, and its f32
    // form is dropped, before the other sweep: a lower peak.
    let (d_image_hat, sums) = sweep(&saved.image.hat, &saved.text.hat, saved.pairs.offset(n), true)?;
    let image = primitives::denormalize(&saved.image, &d_image_hat, saved.dtype)?;
    drop(d_image_hat);
    let (d_text_hat, _) = sweep(&saved.text.hat, &saved.image.hat, saved.pairs.offset(m), false)?;
    let text = primitives::denormalize(&saved.text, &d_text_hat, saved.dtype)?;
    let (dt_rows, db_rows) = sums.expect("the image sweep returns the sums it was asked for");
    let log_scale = saved.log_scale.grad_like(ops::total(&dt_rows, 1.0, Some(t))?)?;
    let bias = saved.bias.grad_like(ops::total(&db_rows, 1.0, None)?)?;
    Ok(SiglipGrads { image, text, log_scale, bias })
}

/// SigLIP's sigmoid loss of one batch as one tape node.
///
/// `image_features` and `text_features` are the projected, not yet
/// normalised embeddings ([B, d], f32 or bf16; f64 on the CPU), the pairs
/// of row i matching; `log_scale` is t (`logit_scale`) and `bias` β
/// (`logit_bias`), each of shape `[]` or `[1]`. The loss is a scalar of the
/// compute dtype.
pub fn siglip_loss(image_features: &Var, text_features: &Var, log_scale: &Var, bias: &Var) -> Result<Var> {
    Siglip { pairs: Pairs::Diagonal }.apply([image_features, text_features, log_scale, bias])
}

/// The sigmoid loss of `image_features` against a block of texts (another
/// rank's, [n, d]) none of which match them: Σ_ij softplus(z_ij) over the
/// image rows m. See the module documentation for the distributed loss it
/// makes with [`siglip_loss`].
pub fn siglip_loss_negatives(image_features: &Var, text_features: &Var, log_scale: &Var, bias: &Var) -> Result<Var> {
    Siglip { pairs: Pairs::None }.apply([image_features, text_features, log_scale, bias])
}

/// The loss node: inputs image features, text features, log-temperature, bias.
struct Siglip {
    pairs: Pairs,
}

impl Op<4> for Siglip {
    const NAME: &'static str = OP;
    type Saved = SiglipSaved;

    fn forward(&self, [image, text, log_scale, bias]: [&Tensor; 4], _: [bool; 4]) -> Result<(Tensor, SiglipSaved)> {
        forward(image, text, log_scale, bias, self.pairs)
    }

    fn backward(self, saved: SiglipSaved, grad: &Tensor, needs: [bool; 4]) -> Result<[Option<Tensor>; 4]> {
        let g = siglip_loss_backward(&saved, grad)?;
        Ok([
            needs[0].then_some(g.image),
            needs[1].then_some(g.text),
            needs[2].then_some(g.log_scale),
            needs[3].then_some(g.bias),
        ])
    }
}
