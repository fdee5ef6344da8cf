//! reclip's MLP layers, open_clip's `c_fc → act → c_proj`, and the linear
//! layers of attention. The GEMMs read the PyTorch-layout weight [out, in]
//! as a transposed operand, without a copy. Each layer is one tape node:
//!
//! - [`linear`]: y = x·Wᵀ (+ b). On a GPU device the bias is the forward
//!   GEMM's epilogue and its gradient the epilogue of the weight gradient's
//!   GEMM dW = dyᵀ·x (cuBLASLt's BIAS and BGRADB on CUDA; the emulator's
//!   GEMM computes the same), so neither takes a pass of its own. On the CPU
//!   the GEMM, then the reference bias add and column sums.
//! - [`linear_act`]: y = act(x·Wᵀ + b), act = GELU (exact, with erf) or
//!   QuickGELU (u·σ(1.702u)), saving the GEMM's output for the backward.
//!   The bias add and the activation are one kernel after the GEMM, and so
//!   are the backward's act' and the bias gradient (a deterministic column
//!   reduction), not cuBLASLt's GELU epilogues: those compute GELU's tanh
//!   approximation (PyTorch uses them only for `approximate='tanh'`), while
//!   CLIP models are trained with the exact erf GELU (open_clip's
//!   `nn.GELU()`) or QuickGELU, which cuBLASLt does not have.
//! - [`mlp`]: `linear_act` then `linear`.

mod cpu;
mod epilogue;
mod fused;
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
