//! reclip's MLP layers, open_clip's `c_fc → act → c_proj`. The GEMMs go
//! through `Tensor::matmul` (cuBLAS on a GPU, reading the PyTorch-layout
//! weight [out, in] as a transposed view, without a copy); the bias add and
//! the activation are one fused epilogue kernel, forward and backward, and
//! the bias gradient is a deterministic column reduction fused into the
//! backward epilogue. Each layer is one tape node:
//!
//! - [`linear`]: y = x·Wᵀ (+ b);
//! - [`linear_act`]: y = act(x·Wᵀ + b), act = GELU (exact, with erf) or
//!   QuickGELU (u·σ(1.702u)), saving the GEMM's output for the backward;
//! - [`mlp`]: `linear_act` then `linear`.

mod cpu;
mod epilogue;
mod gpu;
mod linear;
mod simd;

pub use epilogue::{bias_act_backward, bias_act_forward, bias_grad};
pub use linear::{linear, linear_act};

use reclip_autograd::Var;
use reclip_core::Result;

const OP: &str = "linear";

/// The MLP's activation: open_clip's `nn.GELU()` (exact) or its `QuickGELU`
/// (the original CLIP's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Gelu,
    QuickGelu,
}

/// open_clip's transformer MLP: c_fc, the activation, c_proj.
pub fn mlp(
    x: &Var,
    fc_weight: &Var,
    fc_bias: &Var,
    proj_weight: &Var,
    proj_bias: &Var,
    act: Activation,
) -> Result<Var> {
    linear(&linear_act(x, fc_weight, fc_bias, act)?, proj_weight, Some(proj_bias))
}
