//! Launches of the kernels in kernels/siglip_loss.cu, for any GPU device.
//! Inputs are contiguous f32 (the normalised embeddings); the scalars stay
//! on the device and kernels read them through pointers.

use crate::gpu::{GRAD_ROWS, LSE_ROWS, THREADS, blocks, dims, grad_splits, offset_arg};
use reclip_core::gpu::{i32_arg, optional_ptr, ptr};
use reclip_core::{DType, GpuDevice, KernelArg, Launch, Result, Tensor};

const OP: &str = "siglip_loss";

pub fn rows(
    dev: &GpuDevice,
    a: &Tensor,
    c: &Tensor,
    log_scale: &Tensor,
    bias: &Tensor,
    label_offset: isize,
) -> Result<Tensor> {
    let (m, d) = dims(a)?;
    let (n, _) = dims(c)?;
    let out = Tensor::empty([a.dims()[0]], DType::F32, a.device())?;
    let args = [ptr(a)?, ptr(c)?, ptr(log_scale)?, ptr(bias)?, ptr(&out)?, m, n, d, offset_arg(label_offset)?];
    dev.launch(&Launch::linear("siglip_rows_f32", blocks(a.dims()[0], LSE_ROWS), THREADS, &args))?;
    Ok(out)
}

/// dA, and with `sums` the per-row partial sums of d(loss)/dt and dβ.
#[allow(clippy::too_many_arguments)]
pub fn grad_rows(
    dev: &GpuDevice,
    a: &Tensor,
    c: &Tensor,
    log_scale: &Tensor,
    bias: &Tensor,
    grad: &Tensor,
    weight: f64,
    label_offset: isize,
    sums: bool,
) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    let (m, d) = dims(a)?;
    let (n, _) = dims(c)?;
    let (splits, width) = grad_splits(a.dims()[1]);
    let da = Tensor::empty(a.shape().clone(), DType::F32, a.device())?;
    let per_row = || Tensor::empty([a.dims()[0]], DType::F32, a.device());
    let sums = if sums { Some((per_row()?, per_row()?)) } else { None };
    let args = [
        ptr(a)?,
        ptr(c)?,
        ptr(log_scale)?,
        ptr(bias)?,
        ptr(grad)?,
        KernelArg::F32(weight as f32),
        offset_arg(label_offset)?,
        ptr(&da)?,
        optional_ptr(sums.as_ref().map(|s| &s.0))?,
        optional_ptr(sums.as_ref().map(|s| &s.1))?,
        m,
        n,
        d,
        KernelArg::I32(width as i32),
    ];
    dev.launch(&Launch {
        kernel: "siglip_grad_rows_f32",
        grid: [blocks(a.dims()[0], GRAD_ROWS), splits as u32, 1],
        block: [THREADS, 1, 1],
        shared_bytes: 0,
        args: &args,
    })?;
    Ok((da, sums))
}

/// weight · Σ rows ([1]), or zero where `clamp_by` (t) is past the clamp.
pub fn total(dev: &GpuDevice, rows: &Tensor, weight: f64, clamp_by: Option<&Tensor>) -> Result<Tensor> {
    let out = Tensor::empty([1], DType::F32, rows.device())?;
    let m = i32_arg(OP, "rows", rows.elem_count())?;
    let args = [ptr(rows)?, m, KernelArg::F32(weight as f32), optional_ptr(clamp_by)?, ptr(&out)?];
    dev.launch(&Launch::linear("siglip_total_f32", 1, THREADS, &args))?;
    Ok(out)
}
