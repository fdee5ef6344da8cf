use crate::cpu::reduce::{self as cpu, ReduceShape};
use crate::cpu::softmax as cpu_softmax;
use crate::{DType, Device, DeviceOp, Error, GpuDevice, Real, Result, Shape, Tensor};

fn reduced_dims(dims: &[usize], d: usize, keepdim: bool) -> Vec<usize> {
    let mut out = dims.to_vec();
    if keepdim {
        out[d] = 1;
    } else {
        out.remove(d);
    }
    out
}

/// Sum of `x` over the middle dimension of `rs`, shaped `dims`.
struct Sum<'a> {
    x: &'a Tensor,
    rs: ReduceShape,
    dims: Vec<usize>,
}

impl DeviceOp for Sum<'_> {
    type Output = Tensor;
    const NAME: &'static str = "sum";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let x = self.x.cpu_real::<T>(Self::NAME)?;
        Ok(Tensor::from_real(cpu::sum(&x, self.rs), self.dims, self.x.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::sum(self.x, self.rs)?.reshape(self.dims)
    }
}

/// Maximum of `x` over the middle dimension of `rs` and its first index, shaped `dims`.
struct Max<'a> {
    x: &'a Tensor,
    rs: ReduceShape,
    dims: Vec<usize>,
}

impl DeviceOp for Max<'_> {
    type Output = (Tensor, Tensor);
    const NAME: &'static str = "max";

    fn cpu<T: Real>(self) -> Result<(Tensor, Tensor)> {
        let x = self.x.cpu_real::<T>(Self::NAME)?;
        let (v, i) = cpu::max(&x, self.rs);
        Ok((Tensor::from_real(v, self.dims.clone(), self.x.dtype()), Tensor::from_vec(i, self.dims, &Device::Cpu)?))
    }

    fn gpu(self, _: &GpuDevice) -> Result<(Tensor, Tensor)> {
        let (v, i) = crate::gpu::max(self.x, self.rs)?;
        Ok((v.reshape(self.dims.clone())?, i.reshape(self.dims)?))
    }
}

/// Softmax, or with `log` log-softmax, of `x` over the middle dimension of `rs`.
struct Softmax<'a> {
    x: &'a Tensor,
    rs: ReduceShape,
    log: bool,
}

impl DeviceOp for Softmax<'_> {
    type Output = Tensor;
    const NAME: &'static str = "softmax";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let x = self.x.cpu_real::<T>(Self::NAME)?;
        Ok(Tensor::from_real(cpu_softmax::softmax(&x, self.rs, self.log), self.x.shape().clone(), self.x.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::softmax(self.x, self.rs, self.log)
    }
}

impl Tensor {
    /// Sum over dimension `dim`.
    pub fn sum_dim(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        let d = self.shape().dim_index("sum", dim)?;
        let rs = ReduceShape::new(self.dims(), d);
        let dims = reduced_dims(self.dims(), d, keepdim);
        Sum { x: self, rs, dims }.run(self)
    }

    /// Sum of all elements, as a tensor of shape [].
    pub fn sum_all(&self) -> Result<Tensor> {
        self.reshape([self.elem_count()])?.sum_dim(0, false)
    }

    pub fn mean_dim(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        let n = self.dim(dim)?;
        self.sum_dim(dim, keepdim)?.scale(1.0 / n as f64)
    }

    pub fn mean_all(&self) -> Result<Tensor> {
        self.sum_all()?.scale(1.0 / self.elem_count() as f64)
    }

    /// Maximum over `dim` and the (first) index where it occurs, as u32.
    pub fn max_dim(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        let d = self.shape().dim_index("max", dim)?;
        if self.dims()[d] == 0 {
            return Err(Error::invalid("max", "cannot take the maximum of an empty dimension"));
        }
        let rs = ReduceShape::new(self.dims(), d);
        let dims = reduced_dims(self.dims(), d, keepdim);
        Max { x: self, rs, dims }.run(self)
    }

    /// Sums away the dimensions along which `shape` was broadcast to this
    /// tensor's shape: the gradient of a broadcast.
    pub fn sum_to_shape(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let b = Shape::broadcast("sum_to_shape", shape, self.shape())?;
        if &b != self.shape() {
            return Err(Error::ShapeMismatch { op: "sum_to_shape", lhs: self.shape().clone(), rhs: shape.clone() });
        }
        let extra = self.rank() - shape.rank();
        let mut t = self.clone();
        for _ in 0..extra {
            t = t.sum_dim(0, false)?;
        }
        for (d, &s) in shape.dims().iter().enumerate() {
            if s == 1 && t.dims()[d] != 1 {
                t = t.sum_dim(d as isize, true)?;
            }
        }
        Ok(t)
    }

    /// Softmax over `dim`.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        self.softmax_impl(dim, false)
    }

    /// Log-softmax over `dim`.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        self.softmax_impl(dim, true)
    }

    fn softmax_impl(&self, dim: isize, log: bool) -> Result<Tensor> {
        let d = self.shape().dim_index("softmax", dim)?;
        let rs = ReduceShape::new(self.dims(), d);
        Softmax { x: self, rs, log }.run(self)
    }

    /// Index tensors must be u32.
    pub(crate) fn check_index(&self, op: &'static str) -> Result<()> {
        if self.dtype() != DType::U32 {
            return Err(Error::DType { op, got: self.dtype(), expected: "u32 indices" });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Device, Tensor, rng};

    #[test]
    fn sums_over_each_dimension_of_an_odd_shape() {
        let mut r = rng(3);
        let x = Tensor::randn([3, 7, 5], 0.0, 1.0, DType::F64, &Device::Cpu, &mut r).unwrap();
        let v = x.to_vec_f64().unwrap();
        let at = |a: usize, b: usize, c: usize| v[(a * 7 + b) * 5 + c];
        let s0 = x.sum_dim(0, false).unwrap().to_vec_f64().unwrap();
        let s1 = x.sum_dim(1, true).unwrap();
        assert_eq!(s1.dims(), &[3, 1, 5]);
        let s1 = s1.to_vec_f64().unwrap();
        let s2 = x.sum_dim(-1, false).unwrap().to_vec_f64().unwrap();
        for b in 0..7 {
            for c in 0..5 {
                let e: f64 = (0..3).map(|a| at(a, b, c)).sum();
                assert!((s0[b * 5 + c] - e).abs() < 1e-12);
            }
        }
        for a in 0..3 {
            for c in 0..5 {
                let e: f64 = (0..7).map(|b| at(a, b, c)).sum();
                assert!((s1[a * 5 + c] - e).abs() < 1e-12);
            }
            for b in 0..7 {
                let e: f64 = (0..5).map(|c| at(a, b, c)).sum();
                assert!((s2[a * 7 + b] - e).abs() < 1e-12);
            }
        }
        let total = x.sum_all().unwrap().to_scalar().unwrap();
        assert!((total - v.iter().sum::<f64>()).abs() < 1e-10);
        let mean = x.mean_dim(1, false).unwrap().to_vec_f64().unwrap();
        assert!((mean[0] - (0..7).map(|b| at(0, b, 0)).sum::<f64>() / 7.0).abs() < 1e-12);
    }

    #[test]
    fn max_returns_first_argmax() {
        let x = Tensor::from_vec(vec![1.0f32, 5.0, 5.0, -2.0, 0.0, 3.0], [2, 3], &Device::Cpu).unwrap();
        let (v, i) = x.max_dim(1, false).unwrap();
        assert_eq!(v.to_vec_f32().unwrap(), vec![5.0, 3.0]);
        assert_eq!(i.to_vec::<u32>().unwrap(), vec![1, 2]);
        let (v0, i0) = x.max_dim(0, true).unwrap();
        assert_eq!(v0.dims(), &[1, 3]);
        assert_eq!(v0.to_vec_f32().unwrap(), vec![1.0, 5.0, 5.0]);
        assert_eq!(i0.to_vec::<u32>().unwrap(), vec![0, 0, 0]);
    }

    #[test]
    fn sum_to_shape_undoes_broadcast() {
        let x = Tensor::ones([3, 7, 5], DType::F32, &Device::Cpu).unwrap();
        let s = x.sum_to_shape(&[7, 1].into()).unwrap();
        assert_eq!(s.dims(), &[7, 1]);
        assert!(s.to_vec_f32().unwrap().iter().all(|&v| v == 15.0));
        assert!(x.sum_to_shape(&[4].into()).is_err());
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_reference() {
        let mut r = rng(4);
        let x = Tensor::randn([3, 7, 5], 0.0, 3.0, DType::F64, &Device::Cpu, &mut r).unwrap();
        let v = x.to_vec_f64().unwrap();
        for dim in 0..3 {
            let sm = x.softmax(dim as isize).unwrap().to_vec_f64().unwrap();
            let lsm = x.log_softmax(dim as isize).unwrap().to_vec_f64().unwrap();
            let dims = [3, 7, 5];
            for i in 0..v.len() {
                let idx = [i / 35, (i / 5) % 7, i % 5];
                let lse: f64 = (0..dims[dim])
                    .map(|j| {
                        let mut k = idx;
                        k[dim] = j;
                        v[(k[0] * 7 + k[1]) * 5 + k[2]].exp()
                    })
                    .sum::<f64>()
                    .ln();
                assert!((lsm[i] - (v[i] - lse)).abs() < 1e-12);
                assert!((sm[i] - (v[i] - lse).exp()).abs() < 1e-12);
            }
        }
    }
}
