//! The model's layers, each a struct that owns its parameters (named as in
//! open_clip's state dict) and runs with `forward(&self, cx, x)`, as
//! open_clip's `transformer.py` modules do.

mod attention;
mod block;
mod mlp;
mod norm;

pub use attention::Attention;
pub use block::{Block, Residual, Transformer};
pub(crate) use block::{BlockShape, BlockStds};
pub use mlp::Mlp;
pub use norm::{LN_EPS, LayerNorm};

use reclip_autograd::{Param, Tape, Var};
use reclip_core::{DType, Result};

/// What a forward pass runs in: the tape it records on and the compute dtype.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub tape: &'a Tape,
    pub dtype: DType,
}

impl Context<'_> {
    /// A parameter, taken from the tape and cast to the compute dtype (the
    /// master weights are f32; a bf16 forward's gradients come back in f32).
    pub fn param(&self, p: &Param) -> Result<Var> {
        self.tape.param(p).to_dtype(self.dtype)
    }
}
