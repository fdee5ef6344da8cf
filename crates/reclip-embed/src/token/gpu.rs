//! Launches of the token-embedding kernels (kernels/embed.cu) on a GPU
//! device: the CUDA runtime or the emulator.

use reclip_core::gpu::{THREADS, blocks_for, i32_arg, ptr};
use reclip_core::{GpuDevice, Indices, KernelArg, Launch, Result, Tensor, kernel_name};

const OP: &str = "token_embed";

pub fn forward(dev: &GpuDevice, ids: &Indices, table: &Tensor, pos: &Tensor, len: usize) -> Result<Tensor> {
    let (table, pos) = (table.contiguous()?, pos.contiguous()?);
    let dim = table.dims()[1];
    let out = Tensor::empty([ids.dims()[0], len, dim], table.dtype(), table.device())?;
    if out.elem_count() > 0 {
        let args = [
            ptr(ids.gpu_ids()?)?,
            ptr(&table)?,
            ptr(&pos)?,
            ptr(&out)?,
            KernelArg::I64(ids.len() as i64),
            i32_arg(OP, "sequence length", len)?,
            i32_arg(OP, "embedding width", dim)?,
        ];
        let kernel = kernel_name!("token_embed_forward", table.dtype(), OP)?;
        dev.launch(&Launch::linear(kernel, blocks_for(out.elem_count()), THREADS, &args))?;
    }
    Ok(out)
}

/// Each vocabulary row sums its tokens' gradients in position order, through
/// the ids' grouping by token.
pub fn table_backward(dev: &GpuDevice, grad: &Tensor, ids: &Indices) -> Result<Tensor> {
    let grad = grad.contiguous()?;
    let (dtype, device) = (grad.dtype(), grad.device());
    let (dim, vocab) = (grad.dims()[grad.rank() - 1], ids.bound());
    let (order, starts) = ids.gpu_groups()?;
    let out = Tensor::empty([vocab, dim], dtype, device)?;
    if out.elem_count() > 0 {
        let args = [
            ptr(&grad)?,
            ptr(order)?,
            ptr(starts)?,
            ptr(&out)?,
            KernelArg::I64(vocab as i64),
            i32_arg(OP, "embedding width", dim)?,
        ];
        let kernel = kernel_name!("token_embed_backward", dtype, OP)?;
        dev.launch(&Launch::linear(kernel, blocks_for(out.elem_count()), THREADS, &args))?;
    }
    Ok(out)
}
