use crate::{Op, Var};
use reclip_core::{Result, Tensor};

/// The gradient of a reduction over `dim`, repeated back over the reduced dimension.
fn expand_back(g: &Tensor, x: &Tensor, dim: isize, keepdim: bool) -> Result<Tensor> {
    let d = x.shape().dim_index("sum", dim)?;
    let g = if keepdim { g.clone() } else { g.unsqueeze(d)? };
    g.broadcast_as(x.shape().clone())?.contiguous()
}

struct Sum {
    dim: isize,
    keepdim: bool,
}

impl Op<1> for Sum {
    const NAME: &'static str = "sum";
    /// The input, whose shape the gradient is repeated back to.
    type Saved = Tensor;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, Tensor)> {
        Ok((x.sum_dim(self.dim, self.keepdim)?, x.clone()))
    }

    fn backward(self, x: Tensor, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(expand_back(g, &x, self.dim, self.keepdim)?)])
    }
}

/// Maximum over `dim`; the gradient flows to the first maximal element.
struct Max {
    dim: isize,
    keepdim: bool,
}

/// The input and where along `dim` each maximum is (kept dimension).
struct MaxSaved {
    x: Tensor,
    arg: Tensor,
}

impl Op<1> for Max {
    const NAME: &'static str = "max";
    type Saved = MaxSaved;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, MaxSaved)> {
        let (out, arg) = x.max_dim(self.dim, true)?;
        let out = if self.keepdim { out } else { out.squeeze(self.dim)? };
        Ok((out, MaxSaved { x: x.clone(), arg }))
    }

    fn backward(self, s: MaxSaved, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        let MaxSaved { x, arg } = s;
        let g = if self.keepdim { g.clone() } else { g.unsqueeze(x.shape().dim_index("max", self.dim)?)? };
        Ok([Some(x.zeros_like()?.scatter_add(self.dim, &arg, &g)?)])
    }
}

struct Softmax {
    dim: isize,
}

impl Op<1> for Softmax {
    const NAME: &'static str = "softmax";
    /// The output y.
    type Saved = Tensor;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, Tensor)> {
        let y = x.softmax(self.dim)?;
        Ok((y.clone(), y))
    }

    fn backward(self, y: Tensor, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        // dx = y * (g - Σ g·y)
        let dot = g.mul(&y)?.sum_dim(self.dim, true)?;
        Ok([Some(y.mul(&g.sub(&dot)?)?)])
    }
}

struct LogSoftmax {
    dim: isize,
}

impl Op<1> for LogSoftmax {
    const NAME: &'static str = "log_softmax";
    /// The output y = log softmax(x).
    type Saved = Tensor;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, Tensor)> {
        let y = x.log_softmax(self.dim)?;
        Ok((y.clone(), y))
    }

    fn backward(self, y: Tensor, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        // dx = g - softmax(x) * Σ g
        let total = g.sum_dim(self.dim, true)?;
        Ok([Some(g.sub(&y.exp()?.mul(&total)?)?)])
    }
}

impl Var {
    pub fn sum_dim(&self, dim: isize, keepdim: bool) -> Result<Var> {
        Sum { dim, keepdim }.apply([self])
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
        Max { dim, keepdim }.apply([self])
    }

    pub fn softmax(&self, dim: isize) -> Result<Var> {
        Softmax { dim }.apply([self])
    }

    pub fn log_softmax(&self, dim: isize) -> Result<Var> {
        LogSoftmax { dim }.apply([self])
    }
}
