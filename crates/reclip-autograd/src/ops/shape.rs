use crate::{Backward, Op, Var};
use reclip_core::{DType, Device, Result, Shape, Tensor};

struct Reshape {
    shape: Shape,
}

impl Op<1> for Reshape {
    const NAME: &'static str = "reshape";
    /// The input's shape.
    type Saved = Shape;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, Shape)> {
        Ok((x.reshape(self.shape.clone())?, x.shape().clone()))
    }

    fn backward(self, src: Shape, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(g.reshape(src)?)])
    }
}

struct Transpose {
    d0: isize,
    d1: isize,
}

impl Op<1> for Transpose {
    const NAME: &'static str = "transpose";
    type Saved = ();

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, ())> {
        Ok((x.transpose(self.d0, self.d1)?, ()))
    }

    fn backward(self, _: (), g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(g.transpose(self.d0, self.d1)?)])
    }
}

struct Permute {
    order: Vec<usize>,
}

impl Op<1> for Permute {
    const NAME: &'static str = "permute";
    type Saved = ();

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, ())> {
        Ok((x.permute(&self.order)?, ()))
    }

    fn backward(self, _: (), g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        let mut inverse = vec![0; self.order.len()];
        for (i, &o) in self.order.iter().enumerate() {
            inverse[o] = i;
        }
        Ok([Some(g.permute(&inverse)?)])
    }
}

struct Narrow {
    dim: isize,
    start: usize,
    len: usize,
}

/// What the zeros padding the gradient are made of: the input's dims, dtype
/// and device, and the narrowed dimension.
struct NarrowSaved {
    dims: Vec<usize>,
    dtype: DType,
    device: Device,
    d: usize,
}

impl Op<1> for Narrow {
    const NAME: &'static str = "narrow";
    type Saved = NarrowSaved;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, NarrowSaved)> {
        let out = x.narrow(self.dim, self.start, self.len)?;
        let (dims, dtype, device) = (x.dims().to_vec(), x.dtype(), x.device().clone());
        let d = x.shape().dim_index("narrow", self.dim)?;
        Ok((out, NarrowSaved { dims, dtype, device, d }))
    }

    fn backward(self, s: NarrowSaved, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        let NarrowSaved { dims, dtype, device, d } = s;
        // Pad the gradient back to the full extent with zeros.
        let zeros = |n: usize| {
            let mut z = dims.clone();
            z[d] = n;
            Tensor::zeros(z, dtype, &device)
        };
        let before = zeros(self.start)?;
        let after = zeros(dims[d] - self.start - self.len)?;
        let parts: Vec<&Tensor> = [&before, g, &after].into_iter().filter(|t| t.dims()[d] > 0).collect();
        Ok([Some(Tensor::concat(&parts, d as isize)?)])
    }
}

/// The backward of a concat along `dim`: each input's slice of the gradient.
/// A concat takes any number of inputs, so it is no fixed-arity [`Op`]: it
/// is recorded with [`Var::from_op`] and this backward.
struct ConcatBackward {
    dim: isize,
    /// Each input's extent along `dim`.
    sizes: Vec<usize>,
}

impl Backward for ConcatBackward {
    fn backward(self: Box<Self>, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let mut start = 0;
        let mut grads = Vec::with_capacity(self.sizes.len());
        for (&n, &need) in self.sizes.iter().zip(needs) {
            grads.push(need.then(|| g.narrow(self.dim, start, n)).transpose()?);
            start += n;
        }
        Ok(grads)
    }
}

struct BroadcastAs {
    shape: Shape,
}

impl Op<1> for BroadcastAs {
    const NAME: &'static str = "broadcast_as";
    /// The input's shape, which the gradient is summed back to.
    type Saved = Shape;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, Shape)> {
        Ok((x.broadcast_as(self.shape.clone())?, x.shape().clone()))
    }

    fn backward(self, src: Shape, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(g.sum_to_shape(&src)?)])
    }
}

/// Converts to another dtype; the gradient converts back.
struct ToDtype {
    dtype: DType,
}

impl Op<1> for ToDtype {
    const NAME: &'static str = "to_dtype";
    /// The input's dtype.
    type Saved = DType;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, DType)> {
        Ok((x.to_dtype(self.dtype)?, x.dtype()))
    }

    fn backward(self, src: DType, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(g.to_dtype(src)?)])
    }
}

impl Var {
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Var> {
        Reshape { shape: shape.into() }.apply([self])
    }

    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Var> {
        Transpose { d0, d1 }.apply([self])
    }

    pub fn permute(&self, order: &[usize]) -> Result<Var> {
        Permute { order: order.to_vec() }.apply([self])
    }

    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Var> {
        Narrow { dim, start, len }.apply([self])
    }

    pub fn concat(vars: &[&Var], dim: isize) -> Result<Var> {
        let tensors: Vec<&Tensor> = vars.iter().map(|v| v.tensor()).collect();
        let out = Tensor::concat(&tensors, dim)?;
        let sizes: Vec<usize> = tensors.iter().map(|t| t.dim(dim)).collect::<Result<_>>()?;
        Var::from_op("concat", vars, out, ConcatBackward { dim, sizes })
    }

    pub fn broadcast_as(&self, shape: impl Into<Shape>) -> Result<Var> {
        BroadcastAs { shape: shape.into() }.apply([self])
    }

    pub fn unsqueeze(&self, dim: usize) -> Result<Var> {
        let mut dims = self.tensor().dims().to_vec();
        dims.insert(dim.min(dims.len()), 1);
        self.reshape(dims)
    }

    /// Converts to another dtype; the gradient converts back.
    pub fn to_dtype(&self, dtype: DType) -> Result<Var> {
        if self.tensor().dtype() == dtype {
            return Ok(self.clone());
        }
        ToDtype { dtype }.apply([self])
    }
}
