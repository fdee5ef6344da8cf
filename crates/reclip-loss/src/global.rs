//! The single-rank loss: all B pairs of one batch on one device.

use crate::check::{self, LogScale};
use crate::primitives::{self, GradTerms, Normalized, compute_dtype};
use reclip_autograd::{Op, Var};
use reclip_core::{DType, Result, Tensor};

const OP: &str = "clip_loss";

/// What [`clip_loss_backward`] needs, O(B·d): both sides normalised (f32, or
/// f64 for f64 inputs), their norms, and the 2·B logsumexps.
pub struct ClipLossSaved {
    image: Normalized,
    text: Normalized,
    /// Logsumexp of each row of the logits (over texts) and of each column (over images).
    lse_rows: Tensor,
    lse_cols: Tensor,
    log_scale: LogScale,
    dtype: DType,
}

/// Gradients of the loss, each in its input's dtype and shape.
pub struct ClipLossGrads {
    pub image: Tensor,
    pub text: Tensor,
    pub log_scale: Tensor,
}

/// The loss (shape []; f32 for f32 and bf16 features, f64 for f64) and what
/// the backward pass needs. See the crate documentation for the definition.
pub fn clip_loss_forward(image: &Tensor, text: &Tensor, log_scale: &Tensor) -> Result<(Tensor, ClipLossSaved)> {
    let image_dims = check::features(OP, "image_features", image)?;
    let text_dims = check::features(OP, "text_features", text)?;
    if image_dims != text_dims {
        return Err(reclip_core::Error::ShapeMismatch {
            op: OP,
            lhs: image.shape().clone(),
            rhs: text.shape().clone(),
        });
    }
    check::same_kind(OP, &[("image_features", image), ("text_features", text)])?;
    let log_scale = LogScale::new(OP, log_scale, image)?;
    let image_n = primitives::normalize(&image.contiguous()?)?;
    let text_n = primitives::normalize(&text.contiguous()?)?;
    let t = &log_scale.value;
    let (lse_rows, label_rows) = primitives::lse_rows(&image_n.hat, &text_n.hat, t, 0)?;
    let (lse_cols, label_cols) = primitives::lse_rows(&text_n.hat, &image_n.hat, t, 0)?;
    let loss = primitives::loss_value(&lse_rows, &label_rows, &lse_cols, &label_cols)?;
    let saved = ClipLossSaved { image: image_n, text: text_n, lse_rows, lse_cols, log_scale, dtype: image.dtype() };
    Ok((loss, saved))
}

/// Gradients of `grad_loss · loss` with respect to the image features, the
/// text features and the log-temperature.
pub fn clip_loss_backward(saved: &ClipLossSaved, grad_loss: &Tensor) -> Result<ClipLossGrads> {
    let g = check::upstream(OP, grad_loss, compute_dtype(saved.dtype))?;
    let t = &saved.log_scale.value;
    let b = saved.lse_rows.elem_count();
    let w = 0.5 / b as f64;
    // dz_ij = g·(½·softmax_row(z)_ij + ½·softmax_col(z)_ij − δ_ij) / B
    let image_terms = GradTerms {
        own: Some((&saved.lse_rows, w)),
        other: Some((&saved.lse_cols, w)),
        label_weight: 2.0 * w,
        label_offset: 0,
        with_dt: true,
    };
    // Each side's gradient is taken back through the normalisation and its
    // f32 form dropped before the next sweep, which lowers the peak.
    let (d_image_hat, dt_rows) = primitives::grad_rows(&saved.image.hat, &saved.text.hat, t, &g, &image_terms)?;
    let image = primitives::denormalize(&saved.image, &d_image_hat, saved.dtype)?;
    drop(d_image_hat);
    let text_terms = GradTerms {
        own: Some((&saved.lse_cols, w)),
        other: Some((&saved.lse_rows, w)),
        label_weight: 2.0 * w,
        label_offset: 0,
        with_dt: false,
    };
    let (d_text_hat, _) = primitives::grad_rows(&saved.text.hat, &saved.image.hat, t, &g, &text_terms)?;
    let text = primitives::denormalize(&saved.text, &d_text_hat, saved.dtype)?;
    let dt_rows = dt_rows.expect("grad_rows returns the dt partial sums it was asked for");
    let log_scale = saved.log_scale.grad_like(primitives::dt_value(&[&dt_rows], t)?)?;
    Ok(ClipLossGrads { image, text, log_scale })
}

/// CLIP's symmetric contrastive loss as one tape node.
///
/// `image_features` and `text_features` are the projected, not yet
/// normalised embeddings ([B, d], f32 or bf16; f64 on the CPU);
/// `log_scale` is t, open_clip's `logit_scale` parameter (shape `[]` or `[1]`). The
/// loss is a scalar of the compute dtype (f32 for bf16 features). The
/// gradient with respect to t is zero where t > [`crate::MAX_LOG_SCALE`]
/// (ln 100 as an f32), where the clamp of the scale is active.
pub fn clip_loss(image_features: &Var, text_features: &Var, log_scale: &Var) -> Result<Var> {
    ClipLoss.apply([image_features, text_features, log_scale])
}

/// The loss node: inputs image features, text features, log-temperature.
struct ClipLoss;

impl Op<3> for ClipLoss {
    const NAME: &'static str = OP;
    type Saved = ClipLossSaved;

    fn forward(&self, [image, text, log_scale]: [&Tensor; 3], _: [bool; 3]) -> Result<(Tensor, ClipLossSaved)> {
        clip_loss_forward(image, text, log_scale)
    }

    fn backward(self, saved: ClipLossSaved, grad: &Tensor, needs: [bool; 3]) -> Result<[Option<Tensor>; 3]> {
        let grads = clip_loss_backward(&saved, grad)?;
        Ok([needs[0].then_some(grads.image), needs[1].then_some(grads.text), needs[2].then_some(grads.log_scale)])
    }
}
