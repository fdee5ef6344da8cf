use crate::{Op, Var};
use reclip_core::{Result, Tensor};

/// dB for `A · B` when B is a single matrix shared by a batch of A: one
/// product over the flattened batch instead of a batch of products summed.
fn shared_rhs_grad(a: &Tensor, g: &Tensor) -> Result<Tensor> {
    let k = a.dim(-1)?;
    let n = g.dim(-1)?;
    let a2 = a.reshape([a.elem_count() / k.max(1), k])?;
    let g2 = g.reshape([g.elem_count() / n.max(1), n])?;
    a2.transpose(0, 1)?.matmul(&g2)
}

/// Matrix product over the last two dimensions (batch dimensions broadcast).
struct Matmul;

impl Op<2> for Matmul {
    const NAME: &'static str = "matmul";
    /// Both operands: each one's gradient is a product with the other.
    type Saved = (Tensor, Tensor);

    fn forward(&self, [a, b]: [&Tensor; 2], _: [bool; 2]) -> Result<(Tensor, (Tensor, Tensor))> {
        Ok((a.matmul(b)?, (a.clone(), b.clone())))
    }

    fn backward(self, (a, b): (Tensor, Tensor), g: &Tensor, needs: [bool; 2]) -> Result<[Option<Tensor>; 2]> {
        let da = needs[0].then(|| g.matmul(&b.transpose(-1, -2)?)?.sum_to_shape(a.shape())).transpose()?;
        let db = needs[1]
            .then(|| {
                if b.rank() == 2 {
                    shared_rhs_grad(&a, g)
                } else {
                    a.transpose(-1, -2)?.matmul(g)?.sum_to_shape(b.shape())
                }
            })
            .transpose()?;
        Ok([da, db])
    }
}

impl Var {
    /// Matrix product over the last two dimensions (batch dimensions broadcast).
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        Matmul.apply([self, rhs])
    }
}
