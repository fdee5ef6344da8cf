//! Differentiable ops as types. An [`Op`] of N inputs states its forward on
//! tensors and a typed backward from a typed saved state to N optional
//! gradients; [`Op::apply`] and [`Op::record`] turn it into a tape node, so
//! which inputs are tracked, what the backward is asked for and how the
//! gradients reach the tape are handled here and nowhere else.

use crate::Var;
use reclip_core::{Error, Result, Tensor};

/// A differentiable op with `N` inputs and one output, recorded as one node.
/// The implementing struct holds the op's settings (heads, eps, …); it moves
/// into the tape with the saved state, and both are freed once its backward
/// has run.
pub trait Op<const N: usize>: Sized + 'static {
    /// The node's name in error messages.
    const NAME: &'static str;

    /// The name of this node: an op type that stands for several (the binary
    /// and unary elementwise ops) names the one at hand.
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// What the backward needs from the forward.
    type Saved: 'static;

    /// The output, and what to save for the backward. `needs[i]` says whether
    /// input i will want a gradient (all false when nothing is recorded), so
    /// the forward keeps only what those gradients need.
    fn forward(&self, inputs: [&Tensor; N], needs: [bool; N]) -> Result<(Tensor, Self::Saved)>;

    /// The inputs' gradients from the output's gradient `grad`, each where
    /// `needs` asks for it (the others may be `None`).
    fn backward(self, saved: Self::Saved, grad: &Tensor, needs: [bool; N]) -> Result<[Option<Tensor>; N]>;

    /// Runs the forward on the inputs' values and records the node.
    fn apply(self, inputs: [&Var; N]) -> Result<Var> {
        let needs = inputs.map(Var::is_tracked);
        let (output, saved) = self.forward(inputs.map(Var::tensor), needs)?;
        self.record(inputs, output, saved)
    }

    /// Records the node for an output computed elsewhere: by a fused forward
    /// that produces the outputs of several nodes in one pass.
    fn record(self, inputs: [&Var; N], output: Tensor, saved: Self::Saved) -> Result<Var> {
        let name = self.name();
        Var::from_op(name, &inputs, output, move |grad: &Tensor, needs: &[bool]| {
            let needs: [bool; N] = needs
                .try_into()
                .map_err(|_| Error::invalid(name, format!("the tape passed {} inputs, not {N}", needs.len())))?;
            Ok(Vec::from(self.backward(saved, grad, needs)?))
        })
    }
}
