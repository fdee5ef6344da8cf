//! Multi-head self-attention as open_clip's `nn.MultiheadAttention` computes
//! it, built for CLIP's short sequences (17 to 197 tokens, 77 for text).
//!
//! - [`multi_head_attention`]: the whole layer — packed in-projection
//!   `[3D, D]` with bias, attention, out-projection `[D, D]` with bias; the
//!   projections are `reclip_mlp::linear` layers.
//! - [`attention`]: the core `softmax(Q·Kᵀ/√d)·V` over the packed
//!   in-projection output, one tape node whose backward yields d(qkv) in the
//!   packed layout. On a GPU device it is one fused forward kernel (scores
//!   stay on chip; only the output and each row's logsumexp are kept) and two
//!   fused backward kernels that recompute the probabilities: on tensor cores
//!   for bf16 sequences of up to 256 tokens (kernels/attention_mma.cu), on
//!   CUDA cores for f32 and longer sequences (kernels/attention.cu); the two
//!   files' headers explain the designs.
//! - [`attention_forward`] and [`attention_backward`]: the same on tensors.
//!
//! Causal attention lets position i see keys j ≤ i (the text tower's mask).
//! The scale is 1/√(head width).

mod cpu;
mod gpu;
mod layer;
pub mod mma_tiles;
mod shape;
pub mod tiles;

pub use layer::{attention, multi_head_attention};
pub use shape::AttentionShape;

use reclip_core::{DeviceOp, GpuDevice, Real, Result, Tensor};

const OP: &str = "attention";
const BACKWARD: &str = "attention backward";

/// What the forward keeps for the backward besides its input.
#[derive(Clone, Debug)]
pub struct AttentionOutput {
    /// `[batch, len, width]`, heads concatenated.
    pub out: Tensor,
    /// `[batch, heads, len]`: each query row's logsumexp of its scaled
    /// scores, f32 (f64 for f64 inputs).
    pub lse: Tensor,
}

/// The forward on one device.
struct Forward<'a> {
    qkv: &'a Tensor,
    shape: AttentionShape,
    causal: bool,
}

impl DeviceOp for Forward<'_> {
    type Output = AttentionOutput;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<AttentionOutput> {
        let (out, lse) = cpu::forward::<T>(&self.qkv.cpu_real::<T>(OP)?, &self.shape, self.causal);
        let dtype = self.qkv.dtype();
        Ok(AttentionOutput {
            out: Tensor::from_real(out, self.shape.out_dims(), dtype),
            lse: Tensor::from_real(lse, self.shape.lse_dims(), AttentionShape::lse_dtype(dtype)),
        })
    }

    fn gpu(self, device: &GpuDevice) -> Result<AttentionOutput> {
        let (out, lse) = gpu::forward(device, self.qkv, &self.shape, self.causal)?;
        Ok(AttentionOutput { out, lse })
    }
}

/// Attention over a packed in-projection output `qkv` `[batch, len, 3·width]`
/// (q | k | v along the last dimension, head h in columns h·d .. (h+1)·d of
/// each part).
pub fn attention_forward(qkv: &Tensor, heads: usize, causal: bool) -> Result<AttentionOutput> {
    let shape = AttentionShape::of_qkv(OP, qkv, heads)?;
    Forward { qkv, shape, causal }.run(qkv)
}

/// The backward on one device.
struct Backward<'a> {
    qkv: &'a Tensor,
    fwd: &'a AttentionOutput,
    d_out: &'a Tensor,
    shape: AttentionShape,
    causal: bool,
}

impl DeviceOp for Backward<'_> {
    type Output = Tensor;
    const NAME: &'static str = BACKWARD;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let d_qkv = cpu::backward::<T>(
            &self.qkv.cpu_real::<T>(BACKWARD)?,
            &self.fwd.out.cpu_real::<T>(BACKWARD)?,
            &self.fwd.lse.cpu_real::<T>(BACKWARD)?,
            &self.d_out.cpu_real::<T>(BACKWARD)?,
            &self.shape,
            self.causal,
        );
        Ok(Tensor::from_real(d_qkv, self.qkv.shape().clone(), self.qkv.dtype()))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::backward(device, self.qkv, &self.fwd.out, &self.fwd.lse, self.d_out, &self.shape, self.causal)
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
    let shape = AttentionShape::of_qkv(BACKWARD, qkv, heads)?;
    AttentionShape::check(BACKWARD, "the output", &fwd.out, &shape.out_dims(), qkv.dtype(), qkv)?;
    AttentionShape::check(BACKWARD, "the output's gradient", d_out, &shape.out_dims(), qkv.dtype(), qkv)?;
    let lse_dtype = AttentionShape::lse_dtype(qkv.dtype());
    AttentionShape::check(BACKWARD, "the logsumexp", &fwd.lse, &shape.lse_dims(), lse_dtype, qkv)?;
    Backward { qkv, fwd, d_out, shape, causal }.run(qkv)
}
