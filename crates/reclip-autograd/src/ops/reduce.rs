use crate::Var;
use reclip_core::{Result, Tensor};

/// The gradient of a reduction over `dim`, repeated back over the reduced dimension.
fn expand_back(g: &Tensor, x: &Tensor, dim: isize, keepdim: bool) -> Result<Tensor> {
    let d = x.shape().dim_index("sum", dim)?;
    let g = if keepdim { g.clone() } else { g.unsqueeze(d)? };
    g.broadcast_as(x.shape().clone())?.contiguous()
}

impl Var {
    pub fn sum_dim(&self, dim: isize, keepdim: bool) -> Result<Var> {
        let x = self.tensor().clone();
        let out = x.sum_dim(dim, keepdim)?;
        Var::from_op("sum", &[self], out, move |g: &Tensor, _: &[bool]| {
            Ok(vec![Some(expand_back(g, &x, dim, keepdim)?)])
        })
    }

    pub fn sum_all(&self) -> Result<Var> {
        self.reshape([self.tensor().elem_count()])?.sum_dim(0, false)
    }

    pub fn mean_dim(&self, dim: isize, keepdim: bool) -> Result<Var> {
        let n = self.tensor().dim(dim)?;
        self.sum_dim(dim, keepdim)?.scale(1.0 / n as f64)
    }

    pub fn mean_all(&self) -> Result<Var> {
        self.sum_all()?.scale(1.0 / self.tensor().elem_count() as f64)
    }

    /// Maximum over `dim`; the gradient flows to the first maximal element.
    pub fn max_dim(&self, dim: isize, keepdim: bool) -> Result<Var> {
        let x = self.tensor().clone();
        let (out, arg) = x.max_dim(dim, true)?;
        let out = if keepdim { out } else { out.squeeze(dim)? };
        Var::from_op("max", &[self], out, move |g: &Tensor, _: &[bool]| {
            let g = if keepdim { g.clone() } else { g.unsqueeze(x.shape().dim_index("max", dim)?)? };
            Ok(vec![Some(x.zeros_like()?.scatter_add(dim, &arg, &g)?)])
        })
    }

    pub fn softmax(&self, dim: isize) -> Result<Var> {
        let out = self.tensor().softmax(dim)?;
        let y = out.clone();
        Var::from_op("softmax", &[self], out, move |g: &Tensor, _: &[bool]| {
            // dx = y * (g - Σ g·y)
            let dot = g.mul(&y)?.sum_dim(dim, true)?;
            Ok(vec![Some(y.mul(&g.sub(&dot)?)?)])
        })
    }

    pub fn log_softmax(&self, dim: isize) -> Result<Var> {
        let out = self.tensor().log_softmax(dim)?;
        let y = out.clone();
        Var::from_op("log_softmax", &[self], out, move |g: &Tensor, _: &[bool]| {
            // dx = g - softmax(x) * Σ g
            let total = g.sum_dim(dim, true)?;
            Ok(vec![Some(g.sub(&y.exp()?.mul(&total)?)?)])
        })
    }
}
