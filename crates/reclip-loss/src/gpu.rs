//! Launches of the kernels in kernels/clip_loss.cu, for any GPU device (CUDA
//! or the emulator). Inputs here are contiguous; intermediate tensors are f32.
//! The scale and the upstream gradient stay on the device: kernels read them
//! through pointers, so nothing waits for the host.

use crate::primitives::{GradTerms, Normalized};
use reclip_core::gpu::{i32_arg, optional_ptr, ptr, vector_form};
use reclip_core::{DType, Error, GpuDevice, KernelArg, Launch, Result, Shape, Tensor, kernel_name};

const OP: &str = "clip_loss";
pub(crate) const THREADS: u32 = 256;
/// Rows per block of the one-warp-per-row kernels.
const WARP_ROWS: usize = 8;
/// Rows of A per block of clip_lse_rows_f32 and clip_grad_rows_f32.
pub(crate) const LSE_ROWS: usize = 64;
pub(crate) const GRAD_ROWS: usize = 32;
/// Widest split of the embedding columns one clip_grad_rows_f32 block accumulates.
const GRAD_SPLIT: usize = 512;

/// The rows and the width of a matrix as kernel arguments.
pub(crate) fn dims(x: &Tensor) -> Result<(KernelArg, KernelArg)> {
    Ok((i32_arg(OP, "rows", x.dims()[0])?, i32_arg(OP, "embedding dim", x.dims()[1])?))
}

pub(crate) fn offset_arg(offset: isize) -> Result<KernelArg> {
    let v = i32::try_from(offset)
        .map_err(|_| Error::invalid(OP, format!("label offset {offset} exceeds the kernels' 32-bit limit")))?;
    Ok(KernelArg::I32(v))
}

/// The column splits of a gradient sweep over embeddings of `dim`: how many
/// (gridDim.y) and how wide each is (all but the last; the kernels' `width`).
pub(crate) fn grad_splits(dim: usize) -> (usize, usize) {
    let splits = dim.div_ceil(GRAD_SPLIT);
    (splits, dim.div_ceil(splits))
}

pub(crate) fn blocks(rows: usize, per_block: usize) -> u32 {
    rows.div_ceil(per_block) as u32
}

pub fn normalize(dev: &GpuDevice, x: &Tensor) -> Result<Normalized> {
    let (rows, d) = dims(x)?;
    let hat = Tensor::empty(x.shape().clone(), DType::F32, x.device())?;
    let norm = Tensor::empty([x.dims()[0]], DType::F32, x.device())?;
    let kernel = if vector_form(x.dtype(), x.dims()[1], &[x.gpu_ptr()?, hat.gpu_ptr()?]) {
        kernel_name!("clip_normalize_vec", x.dtype(), OP)?
    } else {
        kernel_name!("clip_normalize", x.dtype(), OP)?
    };
    let args = [ptr(x)?, ptr(&hat)?, ptr(&norm)?, rows, d];
    dev.launch(&Launch::linear(kernel, blocks(x.dims()[0], WARP_ROWS), THREADS, &args))?;
    Ok(Normalized { hat, norm })
}

pub fn denormalize(dev: &GpuDevice, x: &Normalized, dhat: &Tensor, dtype: DType) -> Result<Tensor> {
    let (rows, d) = dims(&x.hat)?;
    let dx = Tensor::empty(x.hat.shape().clone(), dtype, x.hat.device())?;
    let ptrs = [x.hat.gpu_ptr()?, dhat.gpu_ptr()?, dx.gpu_ptr()?];
    let kernel = if vector_form(dtype, x.hat.dims()[1], &ptrs) {
        kernel_name!("clip_denormalize_vec", dtype, OP)?
    } else {
        kernel_name!("clip_denormalize", dtype, OP)?
    };
    let args = [ptr(&x.hat)?, ptr(&x.norm)?, ptr(dhat)?, ptr(&dx)?, rows, d];
    dev.launch(&Launch::linear(kernel, blocks(x.hat.dims()[0], WARP_ROWS), THREADS, &args))?;
    Ok(dx)
}

pub fn lse_rows(
    dev: &GpuDevice,
    a: &Tensor,
    c: &Tensor,
    log_scale: &Tensor,
    label_offset: isize,
) -> Result<(Tensor, Tensor)> {
    let (m, d) = dims(a)?;
    let (n, _) = dims(c)?;
    let lse = Tensor::empty([a.dims()[0]], DType::F32, a.device())?;
    let label = Tensor::empty([a.dims()[0]], DType::F32, a.device())?;
    let args = [ptr(a)?, ptr(c)?, ptr(log_scale)?, ptr(&lse)?, ptr(&label)?, m, n, d, offset_arg(label_offset)?];
    let launch = Launch::linear("clip_lse_rows_f32", blocks(a.dims()[0], LSE_ROWS), THREADS, &args);
    dev.launch(&launch)?;
    Ok((lse, label))
}

pub fn grad_rows(
    dev: &GpuDevice,
    a: &Tensor,
    c: &Tensor,
    log_scale: &Tensor,
    grad: &Tensor,
    terms: &GradTerms<'_>,
) -> Result<(Tensor, Option<Tensor>)> {
    let (m, d) = dims(a)?;
    let (n, _) = dims(c)?;
    let (splits, width) = grad_splits(a.dims()[1]);
    let da = Tensor::empty(a.shape().clone(), DType::F32, a.device())?;
    let dt = if terms.with_dt { Some(Tensor::empty([a.dims()[0]], DType::F32, a.device())?) } else { None };
    let args = [
        ptr(a)?,
        ptr(c)?,
        ptr(log_scale)?,
        ptr(grad)?,
        optional_ptr(terms.own.map(|(t, _)| t))?,
        optional_ptr(terms.other.map(|(t, _)| t))?,
        KernelArg::F32(terms.own.map_or(0.0, |(_, w)| w as f32)),
        KernelArg::F32(terms.other.map_or(0.0, |(_, w)| w as f32)),
        KernelArg::F32(terms.label_weight as f32),
        offset_arg(terms.label_offset)?,
        ptr(&da)?,
        optional_ptr(dt.as_ref())?,
        m,
        n,
        d,
        KernelArg::I32(width as i32),
    ];
    let launch = Launch {
        kernel: "clip_grad_rows_f32",
        grid: [blocks(a.dims()[0], GRAD_ROWS), splits as u32, 1],
        block: [THREADS, 1, 1],
        shared_bytes: 0,
        args: &args,
    };
    dev.launch(&launch)?;
    Ok((da, dt))
}

pub fn loss_value(
    dev: &GpuDevice,
    lse_a: &Tensor,
    label_a: &Tensor,
    lse_b: &Tensor,
    label_b: &Tensor,
) -> Result<Tensor> {
    let loss = Tensor::empty(Shape::new([]), DType::F32, lse_a.device())?;
    let m = i32_arg(OP, "rows", lse_a.elem_count())?;
    let args = [ptr(lse_a)?, ptr(label_a)?, ptr(lse_b)?, ptr(label_b)?, m, ptr(&loss)?];
    dev.launch(&Launch::linear("clip_loss_value_f32", 1, THREADS, &args))?;
    Ok(loss)
}

/// d(loss)/dt from one or two sets of per-row partial sums.
pub fn dt_value(dev: &GpuDevice, rows: &[&Tensor], log_scale: &Tensor) -> Result<Tensor> {
    if rows.len() > 2 {
        return Err(Error::invalid(OP, format!("dt from {} partial sums: the kernel takes at most 2", rows.len())));
    }
    let dt = Tensor::empty([1], DType::F32, log_scale.device())?;
    let part = |i: usize| -> Result<(KernelArg, KernelArg)> {
        let t = rows.get(i).copied();
        Ok((optional_ptr(t)?, i32_arg(OP, "rows", t.map_or(0, Tensor::elem_count))?))
    };
    let ((pa, ma), (pb, mb)) = (part(0)?, part(1)?);
    let args = [pa, ma, pb, mb, ptr(log_scale)?, ptr(&dt)?];
    dev.launch(&Launch::linear("clip_dt_value_f32", 1, THREADS, &args))?;
    Ok(dt)
}
