//! Launches of the patch-embedding kernels (kernels/embed.cu) on a GPU
//! device: the CUDA runtime or the emulator.

use crate::PatchGrid;
use reclip_core::gpu::{THREADS, blocks_for, i32_arg, ptr};
use reclip_core::{GemmCall, GemmEpilogue, GemmOperand, GpuDevice, KernelArg, Launch, Result, Tensor, kernel_name};

const OP: &str = "patch_embed";

fn grid_ints(g: &PatchGrid) -> Result<[KernelArg; 5]> {
    Ok([
        i32_arg(OP, "batch", g.batch)?,
        i32_arg(OP, "channels", g.channels)?,
        i32_arg(OP, "height", g.height)?,
        i32_arg(OP, "width", g.width)?,
        i32_arg(OP, "patch size", g.patch)?,
    ])
}

/// im2col + positional initialisation in one launch, then `out += cols · Wᵀ`.
pub fn forward(
    dev: &GpuDevice,
    images: &Tensor,
    conv_weight: &Tensor,
    class_embedding: &Tensor,
    positional_embedding: &Tensor,
    g: &PatchGrid,
) -> Result<(Tensor, Tensor)> {
    let (images, weight) = (images.contiguous()?, conv_weight.contiguous()?);
    let (cls, pos) = (class_embedding.contiguous()?, positional_embedding.contiguous()?);
    let (dtype, device) = (images.dtype(), images.device());
    let cols = Tensor::empty([g.rows(), g.patch_len()], dtype, device)?;
    let out = Tensor::empty([g.batch, g.tokens(), g.dim], dtype, device)?;
    let total = cols.elem_count() + out.elem_count();
    if total == 0 {
        return Ok((out, cols));
    }
    let mut args = vec![ptr(&images)?, ptr(&cls)?, ptr(&pos)?, ptr(&cols)?, ptr(&out)?];
    args.extend(grid_ints(g)?);
    args.push(i32_arg(OP, "embedding width", g.dim)?);
    dev.launch(&Launch::linear(kernel_name!("patch_embed_im2col", dtype, OP)?, blocks_for(total), THREADS, &args))?;
    if out.elem_count() > 0 {
        let k = g.patch_len();
        dev.gemm(&GemmCall {
            dtype,
            m: g.rows(),
            n: g.dim,
            k,
            batch: 1,
            alpha: 1.0,
            // Accumulate onto the positional initialisation.
            beta: 1.0,
            a: GemmOperand { ptr: cols.gpu_ptr()?, transposed: false, ld: k, batch_stride: 0 },
            // W is [D, K]: read as the K×D operand Wᵀ.
            b: GemmOperand { ptr: weight.gpu_ptr()?, transposed: true, ld: k, batch_stride: 0 },
            c: out.gpu_ptr()?,
            ldc: g.dim,
            c_batch_stride: 0,
            epilogue: GemmEpilogue::None,
        })?;
    }
    Ok((out, cols))
}

pub fn col2im(dev: &GpuDevice, dcols: &Tensor, g: &PatchGrid) -> Result<Tensor> {
    let dcols = dcols.contiguous()?;
    let out = Tensor::empty(g.image_dims(), dcols.dtype(), dcols.device())?;
    if out.elem_count() > 0 {
        let mut args = vec![ptr(&dcols)?, ptr(&out)?];
        args.extend(grid_ints(g)?);
        let kernel = kernel_name!("patch_embed_col2im", dcols.dtype(), OP)?;
        dev.launch(&Launch::linear(kernel, blocks_for(out.elem_count()), THREADS, &args))?;
    }
    Ok(out)
}
