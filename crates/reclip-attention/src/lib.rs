//! Multi-head self-attention as open_clip's `nn.MultiheadAttention` computes
//! it, built for CLIP's short sequences (17 to 197 tokens, 77 for text).
//!
//! - [`multi_head_attention`]: the whole layer — packed in-projection
//!   `[3D, D]` with bias, attention, out-projection `[D, D]` with bias.
//! - [`attention`]: the core `softmax(Q·Kᵀ/√d)·V` over the packed
//!   in-projection output, one tape node whose backward yields d(qkv) in the
//!   packed layout. On a GPU device it is one fused forward kernel (scores
//!   stay on chip; only the output and each row's logsumexp are kept) and two
//!   fused backward kernels that recompute the probabilities
//!   (kernels/attention.cu explains the design).
//! - [`attention_forward`] and [`attention_backward`]: the same on tensors.
//!
//! Causal attention lets position i see keys j ≤ i (the text tower's mask).
//! The scale is 1/√(head width).

mod cpu;
mod gpu;
mod shape;
pub mod tiles;

pub use shape::AttentionShape;

use reclip_autograd::Var;
use reclip_core::{Device, Error, Result, Tensor, with_real};

const OP: &str = "attention";

/// What the forward keeps for the backward besides its input.
#[derive(Clone, Debug)]
pub struct AttentionOutput {
    /// `[batch, len, width]`, heads concatenated.
    pub out: Tensor,
    /// `[batch, heads, len]`: each query row's logsumexp of its scaled
    /// scores, f32 (f64 for f64 inputs).
    pub lse: Tensor,
}

/// Attention over a packed in-projection output `qkv` `[batch, len, 3·width]`
/// (q | k | v along the last dimension, head h in columns h·d .. (h+1)·d of
/// each part).
pub fn attention_forward(qkv: &Tensor, heads: usize, causal: bool) -> Result<AttentionOutput> {
    let shape = AttentionShape::of_qkv(OP, qkv, heads)?;
    match qkv.device() {
        Device::Cpu => with_real!(qkv.dtype(), OP, T => {
            let (out, lse) = cpu::forward::<T>(&qkv.cpu_real::<T>(OP)?, &shape, causal);
            Ok(AttentionOutput {
                out: Tensor::from_real(out, shape.out_dims(), qkv.dtype()),
                lse: Tensor::from_real(lse, shape.lse_dims(), AttentionShape::lse_dtype(qkv.dtype())),
            })
        }),
        Device::Gpu(_) => {
            let (out, lse) = gpu::forward(qkv, &shape, causal)?;
            Ok(AttentionOutput { out, lse })
        }
    }
}

/// d(qkv) `[batch, len, 3·width]` in the packed layout, from the forward's
/// input, its output and logsumexp, and the gradient of the output.
pub fn attention_backward(
    qkv: &Tensor,
    fwd: &AttentionOutput,
    d_out: &Tensor,
    heads: usize,
    causal: bool,
) -> Result<Tensor> {
    let shape = AttentionShape::of_qkv("attention backward", qkv, heads)?;
    let op = "attention backward";
    AttentionShape::check(op, "the output", &fwd.out, &shape.out_dims(), qkv.dtype(), qkv)?;
    AttentionShape::check(op, "the output's gradient", d_out, &shape.out_dims(), qkv.dtype(), qkv)?;
    let lse_dtype = AttentionShape::lse_dtype(qkv.dtype());
    AttentionShape::check(op, "the logsumexp", &fwd.lse, &shape.lse_dims(), lse_dtype, qkv)?;
    match qkv.device() {
        Device::Cpu => with_real!(qkv.dtype(), op, T => {
            let d_qkv = cpu::backward::<T>(
                &qkv.cpu_real::<T>(op)?,
                &fwd.out.cpu_real::<T>(op)?,
                &fwd.lse.cpu_real::<T>(op)?,
                &d_out.cpu_real::<T>(op)?,
                &shape,
                causal,
            );
            Ok(Tensor::from_real(d_qkv, qkv.shape().clone(), qkv.dtype()))
        }),
        Device::Gpu(_) => gpu::backward(qkv, &fwd.out, &fwd.lse, d_out, &shape, causal),
    }
}

/// Attention over the packed in-projection output `qkv` `[batch, len,
/// 3·width]`; returns `[batch, len, width]` with the heads concatenated, as
/// the out-projection reads it. One tape node.
pub fn attention(qkv: &Var, heads: usize, causal: bool) -> Result<Var> {
    let fwd = attention_forward(qkv.tensor(), heads, causal)?;
    let out = fwd.out.clone();
    let input = qkv.tensor().clone();
    Var::from_op(OP, &[qkv], out, move |g: &Tensor, _: &[bool]| {
        Ok(vec![Some(attention_backward(&input, &fwd, g, heads, causal)?)])
    })
}

/// `nn.MultiheadAttention` self-attention on `x` `[batch, len, width]`:
/// `qkv = x·W_inᵀ + b_in`, attention, then `·W_outᵀ + b_out`.
pub fn multi_head_attention(
    x: &Var,
    in_proj_weight: &Var,
    in_proj_bias: &Var,
    out_proj_weight: &Var,
    out_proj_bias: &Var,
    heads: usize,
    causal: bool,
) -> Result<Var> {
    let op = "multi_head_attention";
    let dims = x.tensor().dims();
    if dims.len() != 3 {
        return Err(Error::invalid(op, format!("x must be [batch, tokens, width], got shape {}", x.tensor().shape())));
    }
    let w = dims[2];
    for (what, t, want) in [
        ("in_proj_weight", in_proj_weight, vec![3 * w, w]),
        ("in_proj_bias", in_proj_bias, vec![3 * w]),
        ("out_proj_weight", out_proj_weight, vec![w, w]),
        ("out_proj_bias", out_proj_bias, vec![w]),
    ] {
        if t.tensor().dims() != want.as_slice() {
            return Err(Error::invalid(
                op,
                format!(
                    "{what} must have shape {} for x of shape {}, got {}",
                    reclip_core::Shape::new(want),
                    x.tensor().shape(),
                    t.tensor().shape()
                ),
            ));
        }
    }
    let qkv = x.matmul(&in_proj_weight.transpose(0, 1)?)?.add(in_proj_bias)?;
    let heads_out = attention(&qkv, heads, causal)?;
    heads_out.matmul(&out_proj_weight.transpose(0, 1)?)?.add(out_proj_bias)
}
