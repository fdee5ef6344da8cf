use crate::Var;
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

impl Var {
    /// Matrix product over the last two dimensions (batch dimensions broadcast).
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        let (a, b) = (self.tensor().clone(), rhs.tensor().clone());
        let out = a.matmul(&b)?;
        Var::from_op("matmul", &[self, rhs], out, move |g: &Tensor, needs: &[bool]| {
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
            Ok(vec![da, db])
        })
    }
}
