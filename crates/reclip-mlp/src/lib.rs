//! reclip's MLP layers, open_clip's `c_fc → act → c_proj`, and the linear
//! layers of attention. The GEMMs read the PyTorch-layout weight [out, in]
//! as a transposed operand, without a copy. Each layer is one tape node:
//!
//! - [`linear`]: y = x·Wᵀ (+ b). On a GPU device the bias is the forward
//!   GEMM's epilogue and its gradient the epilogue of the weight gradient's
//!   GEMM dW = dyᵀ·x (cuBLASLt's BIAS and BGRADB on CUDA; the emulator's
//!   GEMM computes the same), so neither takes a pass of its own. On the CPU
//!   the GEMM, then the reference bias add and column sums.
//! - [`mlp`]: open_clip's `c_fc → act → c_proj` as one node. c_fc's GEMM
//!   adds its bias in its epilogue too and writes the pre-activation u =
//!   x·Wᵀ + b, which the backward keeps; c_fc's bias gradient is summed by
//!   its weight gradient's GEMM. cuBLASLt's only activation epilogues compute
//!   GELU's tanh approximation (PyTorch's `approximate='tanh'`, JAX's default
//!   `nn.gelu`), so [`Activation::GeluTanh`] is fused entirely: c_fc's GEMM
//!   applies it (GELU_AUX_BIAS), and the backward's c_proj input-gradient
//!   GEMM applies its derivative and sums c_fc's bias gradient (DGELU_BGRAD).
//!   The exact erf GELU (open_clip's `nn.GELU()`, CLIP's usual) and QuickGELU
//!   have no cuBLASLt epilogue: one 16-byte elementwise kernel each way,
//!   h = act(u) and du = dh·act'(u), runs between the GEMMs.

mod cpu;
mod epilogue;
mod fused;
mod gpu;
mod linear;
mod simd;

pub use epilogue::{activation_backward, activation_forward, bias_grad};
pub use fused::activation_in_gemm;
pub use linear::{linear, mlp};

const OP: &str = "linear";

/// The MLP's activation: open_clip's `nn.GELU()` (exact, with erf), its
/// `nn.GELU(approximate='tanh')` (a config's `act_kwargs`), or its
/// `QuickGELU` (the original CLIP's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Gelu,
    GeluTanh,
    QuickGelu,
}
