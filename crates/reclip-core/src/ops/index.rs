use crate::cpu::index as cpu;
use crate::cpu::reduce::ReduceShape;
use crate::ops::check_same;
use crate::{DeviceOp, Error, GpuDevice, Indices, Real, Result, Tensor};

/// Rows `ids` of the middle dimension of `x` viewed as `rs`; the result has `dims`.
struct IndexSelect<'a> {
    x: &'a Tensor,
    rs: ReduceShape,
    ids: &'a Indices,
    dims: Vec<usize>,
}

impl DeviceOp for IndexSelect<'_> {
    type Output = Tensor;
    const NAME: &'static str = "index_select";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let x = self.x.cpu_real::<T>(Self::NAME)?;
        let out = cpu::index_select(&x, self.rs, self.ids.host())?;
        Ok(Tensor::from_real(out, self.dims, self.x.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::index_select(self.x, self.rs, self.ids, self.dims)
    }
}

/// `base` with the rows of `src` added at `ids` of its middle dimension.
struct IndexAdd<'a> {
    base: &'a Tensor,
    rs: ReduceShape,
    ids: &'a Indices,
    src: &'a Tensor,
}

impl DeviceOp for IndexAdd<'_> {
    type Output = Tensor;
    const NAME: &'static str = "index_add";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let base = self.base.cpu_real::<T>(Self::NAME)?;
        let s = self.src.cpu_real::<T>(Self::NAME)?;
        let out = cpu::index_add(&base, self.rs, self.ids.host(), &s)?;
        Ok(Tensor::from_real(out, self.base.shape().clone(), self.base.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::index_add(self.base, self.rs, self.ids, self.src)
    }
}

/// `x` gathered at `index` along the middle dimension of `rs`; `m` indices per row.
struct Gather<'a> {
    x: &'a Tensor,
    rs: ReduceShape,
    index: &'a Tensor,
    m: usize,
}

impl DeviceOp for Gather<'_> {
    type Output = Tensor;
    const NAME: &'static str = "gather";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let x = self.x.cpu_real::<T>(Self::NAME)?;
        let out = cpu::gather(&x, self.rs, &self.index.to_vec::<u32>()?, self.m)?;
        Ok(Tensor::from_real(out, self.index.shape().clone(), self.x.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::gather(self.x, self.rs, self.index, self.m)
    }
}

/// `base` with `src` added at `index` along the middle dimension of `rs`.
struct ScatterAdd<'a> {
    base: &'a Tensor,
    rs: ReduceShape,
    index: &'a Tensor,
    src: &'a Tensor,
    m: usize,
}

impl DeviceOp for ScatterAdd<'_> {
    type Output = Tensor;
    const NAME: &'static str = "scatter_add";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let base = self.base.cpu_real::<T>(Self::NAME)?;
        let s = self.src.cpu_real::<T>(Self::NAME)?;
        let out = cpu::scatter_add(&base, self.rs, &self.index.to_vec::<u32>()?, &s, self.m)?;
        Ok(Tensor::from_real(out, self.base.shape().clone(), self.base.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::scatter_add(self.base, self.rs, self.index, self.src, self.m)
    }
}

impl Tensor {
    /// Rows of dimension `dim` picked by a 1-D u32 `ids` tensor (an embedding
    /// lookup when `dim` is 0). On a GPU, ids on the host are checked there
    /// and uploaded; ids on the GPU are read back to be checked.
    pub fn index_select(&self, dim: isize, ids: &Tensor) -> Result<Tensor> {
        let d = self.shape().dim_index("index_select", dim)?;
        self.index_select_with(dim, &Indices::new("index_select", ids, self.dims()[d], self.device())?)
    }

    /// [`Tensor::index_select`] with indices checked already: no transfer.
    pub fn index_select_with(&self, dim: isize, ids: &Indices) -> Result<Tensor> {
        let d = self.shape().dim_index("index_select", dim)?;
        ids.check_for("index_select", self.dims()[d], self.device())?;
        if ids.dims().len() != 1 {
            return Err(Error::invalid("index_select", format!("ids must be 1-D, got {}", ids.shape())));
        }
        let rs = ReduceShape::new(self.dims(), d);
        let mut dims = self.dims().to_vec();
        dims[d] = ids.len();
        IndexSelect { x: self, rs, ids, dims }.run(self)
    }

    /// `self` with `src` rows added at positions `ids` of dimension `dim`; the
    /// gradient of `index_select`. Deterministic: each row sums in index order.
    pub fn index_add(&self, dim: isize, ids: &Tensor, src: &Tensor) -> Result<Tensor> {
        let d = self.shape().dim_index("index_add", dim)?;
        self.index_add_with(dim, &Indices::new("index_add", ids, self.dims()[d], self.device())?, src)
    }

    /// [`Tensor::index_add`] with indices checked (and grouped) already: no transfer.
    pub fn index_add_with(&self, dim: isize, ids: &Indices, src: &Tensor) -> Result<Tensor> {
        check_same("index_add", &[self, src])?;
        let d = self.shape().dim_index("index_add", dim)?;
        ids.check_for("index_add", self.dims()[d], self.device())?;
        let mut expected = self.dims().to_vec();
        expected[d] = ids.len();
        if ids.dims().len() != 1 || src.dims() != expected.as_slice() {
            return Err(Error::ShapeMismatch { op: "index_add", lhs: self.shape().clone(), rhs: src.shape().clone() });
        }
        let rs = ReduceShape::new(self.dims(), d);
        IndexAdd { base: self, rs, ids, src }.run(self)
    }

    fn check_gather(&self, op: &'static str, d: usize, index: &Tensor) -> Result<()> {
        index.check_index(op)?;
        let ok = index.rank() == self.rank()
            && index.dims().iter().zip(self.dims()).enumerate().all(|(i, (a, b))| i == d || a == b);
        if !ok {
            return Err(Error::ShapeMismatch { op, lhs: self.shape().clone(), rhs: index.shape().clone() });
        }
        Ok(())
    }

    /// out[.., j, ..] = self[.., index[.., j, ..], ..] along `dim` (torch.gather);
    /// `index` has this tensor's shape except along `dim`.
    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = self.shape().dim_index("gather", dim)?;
        self.check_gather("gather", d, index)?;
        let rs = ReduceShape::new(self.dims(), d);
        let m = index.dims()[d];
        Gather { x: self, rs, index, m }.run(self)
    }

    /// `self` with `src` added at `index` along `dim` (torch.scatter_add); the
    /// gradient of `gather`. Deterministic.
    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        check_same("scatter_add", &[self, src])?;
        let d = self.shape().dim_index("scatter_add", dim)?;
        self.check_gather("scatter_add", d, index)?;
        if src.shape() != index.shape() {
            return Err(Error::ShapeMismatch {
                op: "scatter_add",
                lhs: index.shape().clone(),
                rhs: src.shape().clone(),
            });
        }
        let rs = ReduceShape::new(self.dims(), d);
        let m = index.dims()[d];
        ScatterAdd { base: self, rs, index, src, m }.run(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Device, Tensor, rng};

    #[test]
    fn index_select_and_index_add_are_adjoint() {
        let mut r = rng(5);
        let table = Tensor::randn([7, 5], 0.0, 1.0, DType::F64, &Device::Cpu, &mut r).unwrap();
        let ids = Tensor::from_vec(vec![3u32, 0, 3, 6], [4], &Device::Cpu).unwrap();
        let rows = table.index_select(0, &ids).unwrap();
        assert_eq!(rows.dims(), &[4, 5]);
        let t = table.to_vec_f64().unwrap();
        let got = rows.to_vec_f64().unwrap();
        for (i, id) in [3, 0, 3, 6].iter().enumerate() {
            assert_eq!(&got[i * 5..i * 5 + 5], &t[id * 5..id * 5 + 5]);
        }
        let g = Tensor::randn([4, 5], 0.0, 1.0, DType::F64, &Device::Cpu, &mut r).unwrap();
        let acc = Tensor::zeros([7, 5], DType::F64, &Device::Cpu).unwrap().index_add(0, &ids, &g).unwrap();
        // <select(T), G> == <T, index_add(G)> for any T, G.
        let lhs: f64 = got.iter().zip(g.to_vec_f64().unwrap()).map(|(a, b)| a * b).sum();
        let rhs: f64 = t.iter().zip(acc.to_vec_f64().unwrap()).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-10);
        let bad = Tensor::from_vec(vec![7u32], [1], &Device::Cpu).unwrap();
        assert!(table.index_select(0, &bad).is_err());
    }

    #[test]
    fn index_select_middle_dimension() {
        let x = Tensor::from_vec((0..105).map(|v| v as f32).collect::<Vec<_>>(), [3, 7, 5], &Device::Cpu).unwrap();
        let ids = Tensor::from_vec(vec![6u32, 1], [2], &Device::Cpu).unwrap();
        let y = x.index_select(1, &ids).unwrap().to_vec_f32().unwrap();
        assert_eq!(&y[..5], &[30., 31., 32., 33., 34.]);
        assert_eq!(&y[5..10], &[5., 6., 7., 8., 9.]);
        assert_eq!(y[10], 65.0);
    }

    #[test]
    fn gather_and_scatter_add_follow_torch() {
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], &Device::Cpu).unwrap();
        let idx = Tensor::from_vec(vec![2u32, 0, 1, 1], [2, 2], &Device::Cpu).unwrap();
        assert_eq!(x.gather(1, &idx).unwrap().to_vec_f32().unwrap(), vec![3.0, 1.0, 5.0, 5.0]);
        let src = Tensor::ones([2, 2], DType::F32, &Device::Cpu).unwrap();
        let s = x.zeros_like().unwrap().scatter_add(1, &idx, &src).unwrap();
        assert_eq!(s.to_vec_f32().unwrap(), vec![1.0, 0.0, 1.0, 0.0, 2.0, 0.0]);
        let idx0 = Tensor::from_vec(vec![1u32, 0, 1], [1, 3], &Device::Cpu).unwrap();
        assert_eq!(x.gather(0, &idx0).unwrap().to_vec_f32().unwrap(), vec![4.0, 2.0, 6.0]);
    }
}
