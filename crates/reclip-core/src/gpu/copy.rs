use super::{THREADS, blocks_for, device_of};
use crate::{DType, Error, KernelArg, KernelLayout, Launch, Result, Tensor};

fn copy_kernel(dtype: DType, scatter: bool) -> Result<&'static str> {
    Ok(match (dtype, scatter) {
        (DType::F32, false) => "strided_gather_f32",
        (DType::BF16, false) => "strided_gather_bf16",
        (DType::U32, false) => "strided_gather_u32",
        (DType::F32, true) => "strided_scatter_f32",
        (DType::BF16, true) => "strided_scatter_bf16",
        (DType::U32, true) => "strided_scatter_u32",
        (other, _) => {
            return Err(Error::DType { op: "copy", got: other, expected: "f32, bf16 or u32 on a GPU device" });
        }
    })
}

/// A contiguous copy of a view.
pub fn strided_copy(t: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(t.shape().clone(), t.dtype(), t.device())?;
    let n = t.elem_count();
    if n == 0 {
        return Ok(out);
    }
    let args = [
        KernelArg::Ptr(t.gpu_ptr()?),
        KernelArg::Ptr(out.gpu_ptr()?),
        KernelArg::Layout(KernelLayout::new(t.layout())?),
        KernelArg::I64(n as i64),
    ];
    device_of(t)?.launch(&Launch::linear(copy_kernel(t.dtype(), false)?, blocks_for(n), THREADS, &args))?;
    Ok(out)
}

/// Writes `src` into the view `dst` (which shares storage with a tensor
/// being built, e.g. a slice of a concat's output).
pub fn copy_into(src: &Tensor, dst: &Tensor) -> Result<()> {
    let src = src.contiguous()?;
    let n = src.elem_count();
    if n == 0 {
        return Ok(());
    }
    let args = [
        KernelArg::Ptr(src.gpu_ptr()?),
        KernelArg::Ptr(dst.gpu_ptr()?),
        KernelArg::Layout(KernelLayout::new(dst.layout())?),
        KernelArg::I64(n as i64),
    ];
    device_of(dst)?.launch(&Launch::linear(copy_kernel(dst.dtype(), true)?, blocks_for(n), THREADS, &args))
}

/// f32 ↔ bf16 (bf16 rounds to nearest even).
pub fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    let kernel = match (t.dtype(), dtype) {
        (DType::F32, DType::BF16) => "cast_f32_to_bf16",
        (DType::BF16, DType::F32) => "cast_bf16_to_f32",
        (from, _) => {
            return Err(Error::invalid("to_dtype", format!("no GPU conversion from {from} to {dtype}")));
        }
    };
    let src = t.contiguous()?;
    let out = Tensor::empty(t.shape().clone(), dtype, t.device())?;
    let n = src.elem_count();
    if n > 0 {
        let args = [KernelArg::Ptr(src.gpu_ptr()?), KernelArg::Ptr(out.gpu_ptr()?), KernelArg::I64(n as i64)];
        device_of(t)?.launch(&Launch::linear(kernel, blocks_for(n), THREADS, &args))?;
    }
    Ok(out)
}

/// Sets every element of the new, contiguous tensor `t` to `value`, on the
/// device (no host transfer).
pub fn fill(t: &Tensor, value: f64) -> Result<()> {
    let n = t.elem_count();
    if n == 0 {
        return Ok(());
    }
    let (kernel, value) = match t.dtype() {
        DType::F32 => ("fill_f32", KernelArg::F32(value as f32)),
        DType::BF16 => ("fill_bf16", KernelArg::F32(value as f32)),
        DType::U32 => ("fill_u32", KernelArg::U32(value as u32)),
        other => return Err(Error::DType { op: "full", got: other, expected: "f32, bf16 or u32 on a GPU device" }),
    };
    let args = [KernelArg::Ptr(t.gpu_ptr()?), KernelArg::I64(n as i64), value];
    device_of(t)?.launch(&Launch::linear(kernel, blocks_for(n), THREADS, &args))
}
