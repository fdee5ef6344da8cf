//! The distributed form: one rank's rows against the gathered batch, as
//! open_clip's `ClipLoss(local_loss=True)` with gathered features.

use crate::check::{self, LogScale};
use crate::primitives::{self, GradTerms, Normalized, compute_dtype};
use reclip_autograd::{Op, Var};
use reclip_core::{DType, Error, Result, Tensor};

const OP: &str = "clip_loss_local";

/// What [`clip_loss_local_backward`] needs, O(B·d): the four feature sets
/// normalised, their norms, and the 2·b logsumexps of the local rows.
pub struct ClipLossLocalSaved {
    local_image: Normalized,
    local_text: Normalized,
    gathered_image: Normalized,
    gathered_text: Normalized,
    /// Logsumexp of each local image row over all texts, and of each local text row over all images.
    lse_image: Tensor,
    lse_text: Tensor,
    label_offset: isize,
    log_scale: LogScale,
    dtype: DType,
}

/// Gradients of one rank's loss with respect to each of its inputs, each in
/// its input's dtype and shape.
pub struct ClipLossLocalGrads {
    pub local_image: Tensor,
    pub local_text: Tensor,
    pub gathered_image: Tensor,
    pub gathered_text: Tensor,
    pub log_scale: Tensor,
}

/// Checks the four feature matrices; returns (local rows, world size).
fn check_inputs(
    local_image: &Tensor,
    local_text: &Tensor,
    gathered_image: &Tensor,
    gathered_text: &Tensor,
    rank: usize,
) -> Result<(usize, usize)> {
    let named = [
        ("local_image", local_image),
        ("local_text", local_text),
        ("gathered_image", gathered_image),
        ("gathered_text", gathered_text),
    ];
    let mut dims = Vec::with_capacity(4);
    for (name, t) in named {
        dims.push(check::features(OP, name, t)?);
    }
    check::same_kind(OP, &named)?;
    let (b, d) = dims[0];
    let (n, _) = dims[2];
    let bad = |msg: String| Err(Error::invalid(OP, msg));
    if dims[1] != (b, d) {
        return bad(format!("local_text has shape {}, local_image {}", local_text.shape(), local_image.shape()));
    }
    if dims[3] != (n, d) || dims[2].1 != d {
        return bad(format!(
            "gathered_image has shape {} and gathered_text {}: expected [world·{b}, {d}] each",
            gathered_image.shape(),
            gathered_text.shape()
        ));
    }
    if n % b != 0 {
        return bad(format!("{n} gathered rows are not a whole number of ranks of {b} local rows"));
    }
    let world = n / b;
    if rank >= world {
        return bad(format!("rank {rank} is out of range for a world of {world} ranks ({n} gathered rows / {b})"));
    }
    Ok((b, world))
}

/// One rank's loss (shape []; f32 for f32 and bf16, f64 for f64) and what the
/// backward pass needs. See the crate documentation for the definition and
/// for how the ranks' losses and gradients combine.
pub fn clip_loss_local_forward(
    local_image: &Tensor,
    local_text: &Tensor,
    gathered_image: &Tensor,
    gathered_text: &Tensor,
    rank: usize,
    log_scale: &Tensor,
) -> Result<(Tensor, ClipLossLocalSaved)> {
    let (b, _) = check_inputs(local_image, local_text, gathered_image, gathered_text, rank)?;
    let log_scale = LogScale::new(OP, log_scale, local_image)?;
    let t = &log_scale.value;
    let label_offset = (rank * b) as isize;
    let local_image_n = primitives::normalize(&local_image.contiguous()?)?;
    let local_text_n = primitives::normalize(&local_text.contiguous()?)?;
    let gathered_image_n = primitives::normalize(&gathered_image.contiguous()?)?;
    let gathered_text_n = primitives::normalize(&gathered_text.contiguous()?)?;
    let (lse_image, label_image) = primitives::lse_rows(&local_image_n.hat, &gathered_text_n.hat, t, label_offset)?;
    let (lse_text, label_text) = primitives::lse_rows(&local_text_n.hat, &gathered_image_n.hat, t, label_offset)?;
    let loss = primitives::loss_value(&lse_image, &label_image, &lse_text, &label_text)?;
    let saved = ClipLossLocalSaved {
        local_image: local_image_n,
        local_text: local_text_n,
        gathered_image: gathered_image_n,
        gathered_text: gathered_text_n,
        lse_image,
        lse_text,
        label_offset,
        log_scale,
        dtype: local_image.dtype(),
    };
    Ok((loss, saved))
}

/// One side's logits z = s·(local rows)·(gathered rows)ᵀ with labels at
/// column i + offset: dz_ij = g·(softmax_row(z)_ij − δ_{j, i+offset})·w, w = 1/2b.
fn local_rows(lse: &Tensor, w: f64, offset: isize) -> GradTerms<'_> {
    GradTerms { own: Some((lse, w)), other: None, label_weight: w, label_offset: offset, with_dt: true }
}

/// The same dz seen from the gathered side, whose rows are the logits' columns.
fn gathered_rows(lse: &Tensor, w: f64, offset: isize) -> GradTerms<'_> {
    GradTerms { own: None, other: Some((lse, w)), label_weight: w, label_offset: -offset, with_dt: false }
}

/// Gradients of `grad_loss · loss` of one rank with respect to its five inputs.
pub fn clip_loss_local_backward(saved: &ClipLossLocalSaved, grad_loss: &Tensor) -> Result<ClipLossLocalGrads> {
    let g = check::upstream(OP, grad_loss, compute_dtype(saved.dtype))?;
    let t = &saved.log_scale.value;
    let w = 0.5 / saved.lse_image.elem_count() as f64;
    let off = saved.label_offset;
    let (li, gi, lt, gt) = (&saved.local_image, &saved.gathered_image, &saved.local_text, &saved.gathered_text);
    // Each gradient goes back through the normalisation as soon as it exists.
    let grad = |a: &Normalized, c: &Normalized, terms: &GradTerms<'_>| -> Result<(Tensor, Option<Tensor>)> {
        let (d_hat, dt) = primitives::grad_rows(&a.hat, &c.hat, t, &g, terms)?;
        Ok((primitives::denormalize(a, &d_hat, saved.dtype)?, dt))
    };
    let (local_image, dt_image) = grad(li, gt, &local_rows(&saved.lse_image, w, off))?;
    let (gathered_text, _) = grad(gt, li, &gathered_rows(&saved.lse_image, w, off))?;
    let (local_text, dt_text) = grad(lt, gi, &local_rows(&saved.lse_text, w, off))?;
    let (gathered_image, _) = grad(gi, lt, &gathered_rows(&saved.lse_text, w, off))?;
    let expect = "grad_rows returns the dt partial sums it was asked for";
    let dt = primitives::dt_value(&[&dt_image.expect(expect), &dt_text.expect(expect)], t)?;
    Ok(ClipLossLocalGrads {
        local_image,
        local_text,
        gathered_image,
        gathered_text,
        log_scale: saved.log_scale.grad_like(dt)?,
    })
}

/// One rank's loss as one tape node; see the crate documentation.
pub fn clip_loss_local(
    local_image: &Var,
    local_text: &Var,
    gathered_image: &Var,
    gathered_text: &Var,
    rank: usize,
    log_scale: &Var,
) -> Result<Var> {
    ClipLossLocal { rank }.apply([local_image, local_text, gathered_image, gathered_text, log_scale])
}

/// One rank's loss node: inputs local image and text features, gathered
/// image and text features, log-temperature.
struct ClipLossLocal {
    rank: usize,
}

impl Op<5> for ClipLossLocal {
    const NAME: &'static str = OP;
    type Saved = ClipLossLocalSaved;

    fn forward(
        &self,
        [local_image, local_text, gathered_image, gathered_text, log_scale]: [&Tensor; 5],
        _: [bool; 5],
    ) -> Result<(Tensor, ClipLossLocalSaved)> {
        clip_loss_local_forward(local_image, local_text, gathered_image, gathered_text, self.rank, log_scale)
    }

    fn backward(self, saved: ClipLossLocalSaved, grad: &Tensor, needs: [bool; 5]) -> Result<[Option<Tensor>; 5]> {
        let grads = clip_loss_local_backward(&saved, grad)?;
        let [local_image, local_text, gathered_image, gathered_text, log_scale] = needs;
        Ok([
            local_image.then_some(grads.local_image),
            local_text.then_some(grads.local_text),
            gathered_image.then_some(grads.gathered_image),
            gathered_text.then_some(grads.gathered_text),
            log_scale.then_some(grads.log_scale),
        ])
    }
}
