use crate::cpu::gemm::{HostMatrix, gemm_strided};
use crate::ops::check_same;
use crate::{DeviceOp, Error, GpuDevice, Layout, Real, Result, Shape, Tensor};
use rayon::prelude::*;
use std::borrow::Cow;

/// Below this many multiply-adds per product, a batch is parallelised over its
/// products rather than inside each one.
const SMALL_GEMM: usize = 1 << 18;

/// The shapes of a (batched) matrix product, after broadcasting the batch dimensions.
pub struct MatmulShape {
    pub batch: Shape,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl MatmulShape {
    pub fn new(a: &Shape, b: &Shape) -> Result<Self> {
        let mismatch = || Error::ShapeMismatch { op: "matmul", lhs: a.clone(), rhs: b.clone() };
        if a.rank() < 2 || b.rank() < 2 {
            return Err(mismatch());
        }
        let (ad, bd) = (a.dims(), b.dims());
        let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
        let (k2, n) = (bd[bd.len() - 2], bd[bd.len() - 1]);
        if k != k2 {
            return Err(mismatch());
        }
        let batch = Shape::broadcast("matmul", &Shape::new(&ad[..ad.len() - 2]), &Shape::new(&bd[..bd.len() - 2]))
            .map_err(|_| mismatch())?;
        Ok(MatmulShape { batch, m, n, k })
    }

    pub fn out_dims(&self) -> Vec<usize> {
        let mut d = self.batch.dims().to_vec();
        d.extend([self.m, self.n]);
        d
    }
}

/// Storage offsets of each batch entry of `layout` broadcast to `batch`.
pub fn batch_offsets(layout: &Layout, batch: &Shape) -> Vec<usize> {
    let r = layout.shape().rank();
    let dims = &layout.shape().dims()[..r - 2];
    Layout::from_parts(dims.into(), layout.strides()[..r - 2].to_vec(), layout.offset()).broadcast_to(batch).offsets()
}

struct Operand<'a, T: Clone> {
    data: Cow<'a, [T]>,
    layout: Layout,
}

impl<'a, T: Real> Operand<'a, T> {
    /// Uses the storage as is when it already holds `T`; otherwise converts.
    fn new(t: &'a Tensor) -> Result<Self> {
        let s = t.cpu_storage("matmul")?;
        if s.dtype() == T::DTYPE {
            Ok(Operand { data: Cow::Borrowed(bytemuck::cast_slice(s.as_bytes())), layout: t.layout().clone() })
        } else {
            Ok(Operand { data: t.cpu_real::<T>("matmul")?, layout: Layout::contiguous(t.shape().clone()) })
        }
    }

    fn matrix(&self, offset: usize) -> HostMatrix<T> {
        let r = self.layout.shape().rank();
        let s = self.layout.strides();
        HostMatrix { ptr: self.data[offset..].as_ptr(), rs: s[r - 2] as isize, cs: s[r - 1] as isize }
    }
}

fn matmul_cpu<T: Real>(a: &Tensor, b: &Tensor, ms: &MatmulShape) -> Result<Vec<T>> {
    let (m, n, k) = (ms.m, ms.n, ms.k);
    let batch = ms.batch.elem_count();
    let total = batch * m * n;
    if total == 0 || k == 0 {
        return Ok(vec![T::zero(); total]);
    }
    let (ao, bo) = (Operand::<T>::new(a)?, Operand::<T>::new(b)?);
    let (a_off, b_off) = (batch_offsets(&ao.layout, &ms.batch), batch_offsets(&bo.layout, &ms.batch));
    // gemm overwrites every output element (it does not read dst), so the
    // output is left uninitialised rather than zeroed first.
    let mut out: Vec<T> = Vec::with_capacity(total);
    let dst = OutPtr(out.as_mut_ptr());
    let run = |i: usize, parallel: bool| {
        // SAFETY: each operand's layout addresses only elements of its slice
        // (checked when the tensor was built); product i writes only its own
        // m×n block of the output's capacity.
        unsafe {
            gemm_strided(
                m,
                n,
                k,
                dst.at(i * m * n),
                n as isize,
                1,
                ao.matrix(a_off[i]),
                bo.matrix(b_off[i]),
                T::one(),
                false,
                parallel,
            )
        }
    };
    if batch > 1 && m * n * k < SMALL_GEMM {
        (0..batch).into_par_iter().for_each(|i| run(i, false));
    } else {
        (0..batch).for_each(|i| run(i, true));
    }
    // SAFETY: the products above wrote all `total` elements.
    unsafe { out.set_len(total) };
    Ok(out)
}

struct OutPtr<T>(*mut T);

impl<T> OutPtr<T> {
    fn at(&self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

// SAFETY: the products write disjoint blocks through this pointer.
unsafe impl<T> Sync for OutPtr<T> {}

// HostMatrix holds raw pointers into slices that outlive the rayon scope.
unsafe impl<T: Sync> Send for HostMatrix<T> {}
unsafe impl<T: Sync> Sync for HostMatrix<T> {}

/// `a · b` of shapes `ms`.
struct Matmul<'a> {
    a: &'a Tensor,
    b: &'a Tensor,
    ms: MatmulShape,
}

impl DeviceOp for Matmul<'_> {
    type Output = Tensor;
    const NAME: &'static str = "matmul";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let out = matmul_cpu::<T>(self.a, self.b, &self.ms)?;
        Ok(Tensor::from_real(out, self.ms.out_dims(), self.a.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::matmul(self.a, self.b, &self.ms)
    }
}

impl Tensor {
    /// Matrix product over the last two dimensions, batch dimensions
    /// broadcast. Transposed views are read in place, without a copy.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        check_same("matmul", &[self, rhs])?;
        let ms = MatmulShape::new(self.shape(), rhs.shape())?;
        if rhs.rank() == 2 && self.rank() > 2 && self.is_contiguous() {
            // A batch of rows times one matrix is one larger product.
            let rows = self.elem_count() / ms.k.max(1);
            return self.reshape([rows, ms.k])?.matmul(rhs)?.reshape(ms.out_dims());
        }
        Matmul { a: self, b: rhs, ms }.run(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Device, Tensor, rng};

    fn naive(a: &[f64], b: &[f64], batch: usize, m: usize, n: usize, k: usize, b_batched: bool) -> Vec<f64> {
        let mut out = vec![0.0; batch * m * n];
        for bi in 0..batch {
            let bb = if b_batched { bi } else { 0 };
            for i in 0..m {
                for j in 0..n {
                    out[(bi * m + i) * n + j] = (0..k).map(|p| a[(bi * m + i) * k + p] * b[(bb * k + p) * n + j]).sum();
                }
            }
        }
        out
    }

    #[test]
    fn batched_and_broadcast_products_match_naive() {
        let mut r = rng(6);
        for dtype in [DType::F64, DType::F32, DType::BF16] {
            let a = Tensor::randn([3, 7, 5], 0.0, 1.0, dtype, &Device::Cpu, &mut r).unwrap();
            let b = Tensor::randn([3, 5, 4], 0.0, 1.0, dtype, &Device::Cpu, &mut r).unwrap();
            let w = Tensor::randn([5, 4], 0.0, 1.0, dtype, &Device::Cpu, &mut r).unwrap();
            let tol = match dtype {
                DType::F64 => 1e-12,
                DType::F32 => 1e-5,
                _ => 3e-2,
            };
            let (av, bv, wv) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap(), w.to_vec_f64().unwrap());
            for (got, want) in [
                (a.matmul(&b).unwrap(), naive(&av, &bv, 3, 7, 4, 5, true)),
                (a.matmul(&w).unwrap(), naive(&av, &wv, 3, 7, 4, 5, false)),
            ] {
                assert_eq!(got.dims(), &[3, 7, 4]);
                assert_eq!(got.dtype(), dtype);
                for (g, w) in got.to_vec_f64().unwrap().iter().zip(&want) {
                    assert!((g - w).abs() <= tol * w.abs().max(1.0), "{dtype}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn transposed_operands_are_read_in_place() {
        let mut r = rng(7);
        let a = Tensor::randn([5, 7], 0.0, 1.0, DType::F64, &Device::Cpu, &mut r).unwrap();
        let b = Tensor::randn([4, 5], 0.0, 1.0, DType::F64, &Device::Cpu, &mut r).unwrap();
        let at = a.transpose(0, 1).unwrap();
        let bt = b.transpose(0, 1).unwrap();
        let got = at.matmul(&bt).unwrap().to_vec_f64().unwrap();
        let want = naive(
            &at.contiguous().unwrap().to_vec_f64().unwrap(),
            &bt.contiguous().unwrap().to_vec_f64().unwrap(),
            1,
            7,
            4,
            5,
            false,
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12);
        }
        assert!(a.matmul(&a).is_err());
    }
}
