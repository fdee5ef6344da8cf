use crate::Var;
use reclip_core::{DType, Result, Shape, Tensor};

impl Var {
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Var> {
        let src = self.tensor().shape().clone();
        let out = self.tensor().reshape(shape)?;
        Var::from_op("reshape", &[self], out, move |g: &Tensor, _: &[bool]| Ok(vec![Some(g.reshape(src)?)]))
    }

    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Var> {
        let out = self.tensor().transpose(d0, d1)?;
        Var::from_op("transpose", &[self], out, move |g: &Tensor, _: &[bool]| Ok(vec![Some(g.transpose(d0, d1)?)]))
    }

    pub fn permute(&self, order: &[usize]) -> Result<Var> {
        let out = self.tensor().permute(order)?;
        let mut inverse = vec![0; order.len()];
        for (i, &o) in order.iter().enumerate() {
            inverse[o] = i;
        }
        Var::from_op("permute", &[self], out, move |g: &Tensor, _: &[bool]| Ok(vec![Some(g.permute(&inverse)?)]))
    }

    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Var> {
        let x = self.tensor();
        let out = x.narrow(dim, start, len)?;
        let (dims, dtype, device) = (x.dims().to_vec(), x.dtype(), x.device().clone());
        let d = x.shape().dim_index("narrow", dim)?;
        Var::from_op("narrow", &[self], out, move |g: &Tensor, _: &[bool]| {
            // Pad the gradient back to the full extent with zeros.
            let zeros = |n: usize| {
                let mut z = dims.clone();
                z[d] = n;
                Tensor::zeros(z, dtype, &device)
            };
            let before = zeros(start)?;
            let after = zeros(dims[d] - start - len)?;
            let parts: Vec<&Tensor> = [&before, g, &after].into_iter().filter(|t| t.dims()[d] > 0).collect();
            Ok(vec![Some(Tensor::concat(&parts, d as isize)?)])
        })
    }

    pub fn concat(vars: &[&Var], dim: isize) -> Result<Var> {
        let tensors: Vec<&Tensor> = vars.iter().map(|v| v.tensor()).collect();
        let out = Tensor::concat(&tensors, dim)?;
        let sizes: Vec<usize> = tensors.iter().map(|t| t.dim(dim)).collect::<Result<_>>()?;
        Var::from_op("concat", vars, out, move |g: &Tensor, needs: &[bool]| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(sizes.len());
            for (&n, &need) in sizes.iter().zip(needs) {
                grads.push(need.then(|| g.narrow(dim, start, n)).transpose()?);
                start += n;
            }
            Ok(grads)
        })
    }

    pub fn broadcast_as(&self, shape: impl Into<Shape>) -> Result<Var> {
        let src = self.tensor().shape().clone();
        let out = self.tensor().broadcast_as(shape)?;
        Var::from_op("broadcast_as", &[self], out, move |g: &Tensor, _: &[bool]| Ok(vec![Some(g.sum_to_shape(&src)?)]))
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
        let src = self.tensor().dtype();
        let out = self.tensor().to_dtype(dtype)?;
        Var::from_op("to_dtype", &[self], out, move |g: &Tensor, _: &[bool]| Ok(vec![Some(g.to_dtype(src)?)]))
    }
}
