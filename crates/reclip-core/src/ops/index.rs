use crate::cpu::index as cpu;
use crate::cpu::reduce::ReduceShape;
use crate::ops::check_same;
use crate::{Device, Error, Indices, Result, Tensor, with_real};

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
        match self.device() {
            Device::Cpu => with_real!(self.dtype(), "index_select", T => {
                let x = self.cpu_real::<T>("index_select")?;
                let out = cpu::index_select(&x, rs, ids.host())?;
                Ok(Tensor::from_real(out, dims, self.dtype()))
            }),
            Device::Gpu(_) => crate::gpu::index_select(self, rs, ids, dims),
        }
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
        match self.device() {
            Device::Cpu => with_real!(self.dtype(), "index_add", T => {
                let base = self.cpu_real::<T>("index_add")?;
                let s = src.cpu_real::<T>("index_add")?;
                let out = cpu::index_add(&base, rs, ids.host(), &s)?;
                Ok(Tensor::from_real(out, self.shape().clone(), self.dtype()))
            }),
            Device::Gpu(_) => crate::gpu::index_add(self, rs, ids, src),
        }
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
        match self.device() {
            Device::Cpu => with_real!(self.dtype(), "gather", T => {
                let x = self.cpu_real::<T>("gather")?;
                let out = cpu::gather(&x, rs, &index.to_vec::<u32>()?, m)?;
                Ok(Tensor::from_real(out, index.shape().clone(), self.dtype()))
            }),
            Device::Gpu(_) => crate::gpu::gather(self, rs, index, m),
        }
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
        match self.device() {
            Device::Cpu => with_real!(self.dtype(), "scatter_add", T => {
                let base = self.cpu_real::<T>("scatter_add")?;
                let s = src.cpu_real::<T>("scatter_add")?;
                let out = cpu::scatter_add(&base, rs, &index.to_vec::<u32>()?, &s, m)?;
                Ok(Tensor::from_real(out, self.shape().clone(), self.dtype()))
            }),
            Device::Gpu(_) => crate::gpu::scatter_add(self, rs, index, src, m),
        }
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
