//! Launches of the LayerNorm kernels (kernels/layer_norm.cu).

use crate::{LayerNormGrads, LayerNormOutput};
use reclip_core::gpu::{THREADS, blocks_for, i32_arg, ptr};
use reclip_core::{DType, Error, GpuDevice, KernelArg, Launch, Result, Tensor, kernel_name};

const OP: &str = "layer_norm";
/// Rows per block of the forward kernel (one warp each).
const FORWARD_ROWS_PER_BLOCK: usize = 8;
/// Warps per block of the backward kernel, each with 2·dim f32 accumulators.
const BACKWARD_WARPS: usize = 4;
/// Upper bound on the backward's blocks: enough to fill a large GPU; fixed
/// by the shape alone, so the order of the dgamma/dbeta sums (and so their
/// value) is the same on every device.
const BACKWARD_MAX_BLOCKS: usize = 1024;
/// Dynamic shared memory a block may use (227 KiB on sm_80 and sm_90).
const MAX_SHARED_BYTES: usize = 227 * 1024;

/// The widest row the backward kernel's shared memory holds.
pub const MAX_BACKWARD_WIDTH: usize = MAX_SHARED_BYTES / (2 * BACKWARD_WARPS * 4);

/// Whether the kernels' vector forms can run on these tensors (see
/// [`reclip_core::gpu::vector_form`]).
fn vector_form(dtype: DType, dim: usize, tensors: &[&Tensor]) -> Result<bool> {
    let ptrs = tensors.iter().map(|t| t.gpu_ptr()).collect::<Result<Vec<u64>>>()?;
    Ok(reclip_core::gpu::vector_form(dtype, dim, &ptrs))
}

/// LayerNorm of `x` [rows, dim], or with `h`, of r = x + h, which is
/// returned too (the kernel writes it as it goes).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    dev: &GpuDevice,
    x: &Tensor,
    h: Option<&Tensor>,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    rows: usize,
    dim: usize,
) -> Result<(LayerNormOutput, Option<Tensor>)> {
    let (dtype, device) = (x.dtype(), x.device());
    let (x, gamma, beta) = (x.contiguous()?, gamma.contiguous()?, beta.contiguous()?);
    let h = h.map(Tensor::contiguous).transpose()?;
    let y = Tensor::empty(x.shape().clone(), dtype, device)?;
    let r = h.as_ref().map(|_| Tensor::empty(x.shape().clone(), dtype, device)).transpose()?;
    let mean = Tensor::empty([rows], DType::F32, device)?;
    let rstd = Tensor::empty([rows], DType::F32, device)?;
    if rows > 0 {
        let mut tensors = vec![&x, &gamma, &beta, &y];
        tensors.extend(h.iter().chain(&r));
        let kernel = match (h.is_some(), vector_form(dtype, dim, &tensors)?) {
            (true, true) => kernel_name!("add_layer_norm_fwd_vec", dtype, OP)?,
            (true, false) => kernel_name!("add_layer_norm_fwd", dtype, OP)?,
            (false, true) => kernel_name!("layer_norm_fwd_vec", dtype, OP)?,
            (false, false) => kernel_name!("layer_norm_fwd", dtype, OP)?,
        };
        let mut args = vec![ptr(&x)?];
        if let (Some(h), Some(r)) = (&h, &r) {
            args.extend([ptr(h)?, ptr(r)?]);
        }
        args.extend([
            ptr(&gamma)?,
            ptr(&beta)?,
            ptr(&y)?,
            ptr(&mean)?,
            ptr(&rstd)?,
            KernelArg::I64(rows as i64),
            i32_arg(OP, "width", dim)?,
            KernelArg::F32(eps),
        ]);
        let blocks = u32::try_from(rows.div_ceil(FORWARD_ROWS_PER_BLOCK))
            .map_err(|_| Error::invalid(OP, format!("{rows} rows exceed the grid's limit")))?;
        dev.launch(&Launch::linear(kernel, blocks, THREADS, &args))?;
    }
    Ok((LayerNormOutput { y, mean, rstd }, r))
}

#[allow(clippy::too_many_arguments)]
pub fn backward(
    dev: &GpuDevice,
    dy: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    rows: usize,
    dim: usize,
) -> Result<LayerNormGrads> {
    if dim > MAX_BACKWARD_WIDTH {
        return Err(Error::invalid(
            OP,
            format!("width {dim} exceeds the backward kernel's limit of {MAX_BACKWARD_WIDTH} (shared memory)"),
        ));
    }
    let (dtype, device) = (x.dtype(), x.device());
    let (dy, x, gamma) = (dy.contiguous()?, x.contiguous()?, gamma.contiguous()?);
    let (mean, rstd) = (mean.contiguous()?, rstd.contiguous()?);
    let dx = Tensor::empty(x.shape().clone(), dtype, device)?;
    if rows == 0 || dim == 0 {
        let zeros = || Tensor::zeros([dim], dtype, device);
        return Ok(LayerNormGrads { x: dx, gamma: zeros()?, beta: zeros()? });
    }
    let blocks = rows.div_ceil(BACKWARD_WARPS).min(BACKWARD_MAX_BLOCKS);
    let partial = Tensor::empty([blocks, 2 * dim], DType::F32, device)?;
    let dim_arg = i32_arg(OP, "width", dim)?;
    let args = [
        ptr(&dy)?,
        ptr(&x)?,
        ptr(&gamma)?,
        ptr(&mean)?,
        ptr(&rstd)?,
        ptr(&dx)?,
        ptr(&partial)?,
        KernelArg::I64(rows as i64),
        dim_arg,
    ];
    let kernel = if vector_form(dtype, dim, &[&dy, &x, &gamma, &dx])? {
        kernel_name!("layer_norm_bwd_vec", dtype, OP)?
    } else {
        kernel_name!("layer_norm_bwd", dtype, OP)?
    };
    dev.launch(&Launch {
        kernel,
        grid: [blocks as u32, 1, 1],
        block: [(BACKWARD_WARPS * 32) as u32, 1, 1],
        shared_bytes: (2 * BACKWARD_WARPS * dim * 4) as u32,
        args: &args,
    })?;
    let dgamma = Tensor::empty([dim], dtype, device)?;
    let dbeta = Tensor::empty([dim], dtype, device)?;
    let args = [ptr(&partial)?, KernelArg::I32(blocks as i32), dim_arg, ptr(&dgamma)?, ptr(&dbeta)?];
    let kernel = kernel_name!("layer_norm_bwd_params", dtype, OP)?;
    dev.launch(&Launch::linear(kernel, blocks_for(2 * dim), THREADS, &args))?;
    Ok(LayerNormGrads { x: dx, gamma: dgamma, beta: dbeta })
}
