//! Attention on the tape: the core [`attention`] as one node, and the whole
//! [`multi_head_attention`] layer around it, whose projections are
//! reclip-mlp's linear layers (fused bias epilogue, deterministic bias
//! gradient).

use crate::{AttentionOutput, OP, attention_backward, attention_forward};
use reclip_autograd::{Op, Var};
use reclip_core::{Error, Result, Shape, Tensor};
use reclip_mlp::linear;

/// The attention node: input qkv.
struct Attention {
    heads: usize,
    causal: bool,
}

/// The forward's input and what it keeps for the backward, from which the
/// backward recomputes the probabilities.
struct AttentionSaved {
    qkv: Tensor,
    fwd: AttentionOutput,
}

impl Op<1> for Attention {
    const NAME: &'static str = OP;
    type Saved = AttentionSaved;

    fn forward(&self, [qkv]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, AttentionSaved)> {
        let fwd = attention_forward(qkv, self.heads, self.causal)?;
        Ok((fwd.out.clone(), AttentionSaved { qkv: qkv.clone(), fwd }))
    }

    fn backward(self, s: AttentionSaved, grad: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(attention_backward(&s.qkv, &s.fwd, grad, self.heads, self.causal)?)])
    }
}

/// Attention over the packed in-projection output `qkv` `[batch, len,
/// 3·width]`; returns `[batch, len, width]` with the heads concatenated, as
/// the out-projection reads it. One tape node.
pub fn attention(qkv: &Var, heads: usize, causal: bool) -> Result<Var> {
    Attention { heads, causal }.apply([qkv])
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
                    Shape::new(want),
                    x.tensor().shape(),
                    t.tensor().shape()
                ),
            ));
        }
    }
    let qkv = linear(x, in_proj_weight, Some(in_proj_bias))?;
    let heads_out = attention(&qkv, heads, causal)?;
    linear(&heads_out, out_proj_weight, Some(out_proj_bias))
}
