use crate::{Device, Error, Layout, Result, Shape, Tensor};

impl Tensor {
    /// The same elements with another shape; a view when contiguous.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.elem_count() != self.elem_count() {
            return Err(Error::ShapeMismatch { op: "reshape", lhs: self.shape().clone(), rhs: shape });
        }
        let src = self.contiguous()?;
        let offset = src.layout().offset();
        Ok(src.with_layout(Layout::contiguous(shape).with_offset(offset)))
    }

    /// Swaps two dimensions (a view).
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let a = self.shape().dim_index("transpose", d0)?;
        let b = self.shape().dim_index("transpose", d1)?;
        Ok(self.with_layout(self.layout().transpose(a, b)))
    }

    /// Reorders the dimensions (a view): dimension i of the result is `order[i]` of `self`.
    pub fn permute(&self, order: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.rank()];
        if order.len() != self.rank()
            || order.iter().any(|&d| d >= self.rank() || std::mem::replace(&mut seen[d], true))
        {
            return Err(Error::invalid(
                "permute",
                format!("{order:?} is not a permutation of the dimensions of {}", self.shape()),
            ));
        }
        Ok(self.with_layout(self.layout().permute(order)))
    }

    /// `len` elements of dimension `dim` starting at `start` (a view).
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = self.shape().dim_index("narrow", dim)?;
        let size = self.dims()[d];
        if start + len > size {
            return Err(Error::invalid(
                "narrow",
                format!("range {start}..{} out of bounds for dimension {d} of {}", start + len, self.shape()),
            ));
        }
        Ok(self.with_layout(self.layout().narrow(d, start, len)))
    }

    /// Inserts a dimension of size 1 at `dim` (0..=rank).
    pub fn unsqueeze(&self, dim: usize) -> Result<Tensor> {
        if dim > self.rank() {
            return Err(Error::invalid("unsqueeze", format!("dimension {dim} out of range for {}", self.shape())));
        }
        let mut dims = self.dims().to_vec();
        dims.insert(dim, 1);
        self.reshape(dims)
    }

    /// Removes dimension `dim`, which must have size 1.
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = self.shape().dim_index("squeeze", dim)?;
        if self.dims()[d] != 1 {
            return Err(Error::invalid("squeeze", format!("dimension {d} of {} is not 1", self.shape())));
        }
        let mut dims = self.dims().to_vec();
        dims.remove(d);
        self.reshape(dims)
    }

    /// A view repeating this tensor to `shape` by broadcasting rules.
    pub fn broadcast_as(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        let b = Shape::broadcast("broadcast_as", self.shape(), &shape)?;
        if b != shape {
            return Err(Error::ShapeMismatch { op: "broadcast_as", lhs: self.shape().clone(), rhs: shape });
        }
        Ok(self.with_layout(self.layout().broadcast_to(&shape)))
    }

    /// Joins tensors along `dim`; all other dimensions must agree.
    pub fn concat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = *tensors.first().ok_or_else(|| Error::invalid("concat", "no tensors given"))?;
        crate::ops::check_same("concat", tensors)?;
        let d = first.shape().dim_index("concat", dim)?;
        let mut dims = first.dims().to_vec();
        dims[d] = 0;
        for t in tensors {
            let mut other = t.dims().to_vec();
            if other.len() != dims.len() {
                return Err(Error::ShapeMismatch { op: "concat", lhs: first.shape().clone(), rhs: t.shape().clone() });
            }
            other[d] = 0;
            if other != dims {
                return Err(Error::ShapeMismatch { op: "concat", lhs: first.shape().clone(), rhs: t.shape().clone() });
            }
        }
        dims[d] = tensors.iter().map(|t| t.dims()[d]).sum();
        // A copy of any dtype, u32 included, as `Tensor::copy` is: storage
        // machinery, not a `DeviceOp` (whose paths compute in a float type).
        match first.device() {
            Device::Cpu => {
                // Row-major concat: interleave the inputs' [outer, size_i*inner] blocks.
                let outer: usize = dims[..d].iter().product();
                let parts: Vec<Tensor> = tensors.iter().map(|t| t.contiguous()).collect::<Result<_>>()?;
                let mut out = crate::CpuStorage::zeros(first.dtype(), dims.iter().product());
                let size = first.dtype().size_in_bytes();
                let mut dst_off = 0;
                let dst = out.as_bytes_mut();
                for o in 0..outer {
                    for p in &parts {
                        let block = p.elem_count() / outer.max(1) * size;
                        let src = p.cpu_storage("concat")?.as_bytes();
                        let start = p.layout().offset() * size + o * block;
                        dst[dst_off..dst_off + block].copy_from_slice(&src[start..start + block]);
                        dst_off += block;
                    }
                }
                Ok(Tensor::from_cpu(out, dims))
            }
            Device::Gpu(_) => {
                let out = Tensor::empty(dims, first.dtype(), first.device())?;
                let mut start = 0;
                for t in tensors {
                    let len = t.dims()[d];
                    crate::gpu::copy_into(t, &out.narrow(d as isize, start, len)?)?;
                    start += len;
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Device, Tensor};

    fn iota(dims: &[usize]) -> Tensor {
        let n: usize = dims.iter().product();
        Tensor::from_vec((0..n).map(|v| v as f32).collect::<Vec<_>>(), dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn transpose_then_contiguous() {
        let t = iota(&[2, 3]).transpose(0, 1).unwrap();
        assert_eq!(t.dims(), &[3, 2]);
        assert_eq!(t.to_vec_f32().unwrap(), vec![0., 3., 1., 4., 2., 5.]);
        assert_eq!(t.reshape([6]).unwrap().to_vec_f32().unwrap(), vec![0., 3., 1., 4., 2., 5.]);
    }

    #[test]
    fn narrow_and_concat_round_trip() {
        let t = iota(&[3, 7, 5]);
        let a = t.narrow(1, 0, 2).unwrap();
        let b = t.narrow(1, 2, 5).unwrap();
        let c = Tensor::concat(&[&a, &b], 1).unwrap();
        assert_eq!(c.to_vec_f32().unwrap(), t.to_vec_f32().unwrap());
        let d = Tensor::concat(&[&t.narrow(0, 1, 2).unwrap(), &t.narrow(0, 0, 1).unwrap()], 0).unwrap();
        let v = t.to_vec_f32().unwrap();
        assert_eq!(d.to_vec_f32().unwrap(), [&v[35..], &v[..35]].concat());
    }

    #[test]
    fn permute_matches_index_arithmetic() {
        let t = iota(&[3, 7, 5]);
        let p = t.permute(&[2, 0, 1]).unwrap();
        assert_eq!(p.dims(), &[5, 3, 7]);
        let v = p.to_vec_f32().unwrap();
        for a in 0..5 {
            for b in 0..3 {
                for c in 0..7 {
                    assert_eq!(v[(a * 3 + b) * 7 + c], ((b * 7 + c) * 5 + a) as f32);
                }
            }
        }
        assert!(t.permute(&[0, 0, 1]).is_err());
    }

    #[test]
    fn broadcast_view_and_errors() {
        let t = iota(&[1, 3]).broadcast_as([2, 3]).unwrap();
        assert_eq!(t.to_vec_f32().unwrap(), vec![0., 1., 2., 0., 1., 2.]);
        assert!(iota(&[2]).broadcast_as([3]).is_err());
        assert!(iota(&[2, 3]).reshape([5]).is_err());
        assert!(iota(&[2, 3]).narrow(1, 2, 2).is_err());
        let bf = iota(&[2, 3]).to_dtype(DType::BF16).unwrap();
        assert!(Tensor::concat(&[&iota(&[2, 3]), &bf], 0).is_err());
    }
}
