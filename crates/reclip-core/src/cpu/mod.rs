//! CPU implementations of the core ops. They compute in f32 (f32 and bf16
//! tensors) or f64 (f64 tensors): inputs are read as contiguous slices of the
//! compute type, borrowed when no conversion or gather is needed.

pub mod elementwise;
pub mod gelu_tanh;
pub mod gemm;
pub mod index;
pub mod reduce;
pub mod simd;
pub mod softmax;
pub mod threads;

use crate::{CpuStorage, DType, Element, Layout, Real};
use half::bf16;
use std::borrow::Cow;

/// Elements of `layout` over `storage`, in row-major order, as compute type `T`.
pub fn read_real<'a, T: Real>(storage: &'a CpuStorage, layout: &Layout) -> Cow<'a, [T]> {
    let n = layout.shape().elem_count();
    if storage.dtype() == T::DTYPE && layout.is_contiguous() {
        let bytes = storage.as_bytes();
        let all: &[T] = bytemuck::cast_slice(bytes);
        return Cow::Borrowed(&all[layout.offset()..layout.offset() + n]);
    }
    let mut out = Vec::with_capacity(n);
    match storage {
        CpuStorage::F32(v) => layout.for_each_offset(|_, o| out.push(T::from_f32(v[o]))),
        CpuStorage::BF16(v) => layout.for_each_offset(|_, o| out.push(T::from_f32(v[o].to_f32()))),
        CpuStorage::F64(v) => layout.for_each_offset(|_, o| out.push(<T as Element>::from_f64(v[o]))),
        // Through f64, where every u32 is exact; to f32 that rounds once, as `as f32` does.
        CpuStorage::U32(v) => layout.for_each_offset(|_, o| out.push(<T as Element>::from_f64(f64::from(v[o])))),
    }
    Cow::Owned(out)
}

/// Stores compute-type results as `dtype` (bf16 rounds to nearest even).
pub fn storage_from_real<T: Real>(data: Vec<T>, dtype: DType) -> CpuStorage {
    if dtype == T::DTYPE {
        return match dtype {
            DType::F32 => CpuStorage::F32(bytemuck::allocation::cast_vec(data)),
            DType::F64 => CpuStorage::F64(bytemuck::allocation::cast_vec(data)),
            _ => unreachable!("Real is f32 or f64"),
        };
    }
    match dtype {
        DType::F32 => CpuStorage::F32(data.iter().map(|v| v.to_f32().unwrap_or(f32::NAN)).collect()),
        DType::BF16 => CpuStorage::BF16(data.iter().map(|v| bf16::from_f32(v.to_f32().unwrap_or(f32::NAN))).collect()),
        DType::F64 => CpuStorage::F64(data.iter().map(|v| Element::to_f64(*v)).collect()),
        DType::U32 => CpuStorage::U32(data.iter().map(|v| Element::to_f64(*v) as u32).collect()),
    }
}

/// Gathers the elements of `layout` into a new contiguous storage of the same dtype.
pub fn gather_contiguous(storage: &CpuStorage, layout: &Layout) -> CpuStorage {
    fn pick<T: Copy>(v: &[T], layout: &Layout) -> Vec<T> {
        let mut out = Vec::with_capacity(layout.shape().elem_count());
        layout.for_each_offset(|_, o| out.push(v[o]));
        out
    }
    match storage {
        CpuStorage::F32(v) => CpuStorage::F32(pick(v, layout)),
        CpuStorage::BF16(v) => CpuStorage::BF16(pick(v, layout)),
        CpuStorage::F64(v) => CpuStorage::F64(pick(v, layout)),
        CpuStorage::U32(v) => CpuStorage::U32(pick(v, layout)),
    }
}

/// Minimum number of elements per rayon task; below it a loop runs serially.
pub const PAR_CHUNK: usize = 1 << 14;
