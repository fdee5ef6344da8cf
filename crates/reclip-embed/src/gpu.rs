//! Launches of the embedding kernels (kernels/embed.cu) on a GPU device: the
//! CUDA runtime or the emulator.

use crate::PatchGrid;
use reclip_core::gpu::{THREADS, blocks_for, device_of, int_arg};
use reclip_core::{DType, GemmCall, GemmOperand, Indices, KernelArg, Launch, Result, Tensor, kernel_name};

const OP: &str = "patch_embed";

/// Threads the first stage of the batch sum aims for: it splits the batch into
/// enough chunks to fill a large GPU. The split depends on the shape alone, so
/// the summation order (and the result) is the same on every device.
const BATCH_SUM_THREADS: usize = 1 << 18;

/// (chunks, images per chunk) of the batch sum over `batch` images of
/// `row_len` elements; no chunks for an empty batch.
fn batch_split(batch: usize, row_len: usize) -> (usize, usize) {
    if batch == 0 || row_len == 0 {
        return (0, 0);
    }
    let wanted = BATCH_SUM_THREADS.div_ceil(row_len).clamp(1, 65535).min(batch);
    let chunk = batch.div_ceil(wanted);
    (batch.div_ceil(chunk), chunk)
}

fn ptr(t: &Tensor) -> Result<KernelArg> {
    Ok(KernelArg::Ptr(t.gpu_ptr()?))
}

fn grid_ints(g: &PatchGrid) -> Result<[KernelArg; 5]> {
    Ok([
        KernelArg::I32(int_arg(OP, "batch", g.batch)?),
        KernelArg::I32(int_arg(OP, "channels", g.channels)?),
        KernelArg::I32(int_arg(OP, "height", g.height)?),
        KernelArg::I32(int_arg(OP, "width", g.width)?),
        KernelArg::I32(int_arg(OP, "patch size", g.patch)?),
    ])
}

/// im2col + positional initialisation in one launch, then `out += cols · Wᵀ`.
pub fn patch_embed_forward(
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
    args.push(KernelArg::I32(int_arg(OP, "embedding width", g.dim)?));
    let dev = device_of(&images)?;
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
        })?;
    }
    Ok((out, cols))
}

pub fn col2im(dcols: &Tensor, g: &PatchGrid) -> Result<Tensor> {
    let dcols = dcols.contiguous()?;
    let out = Tensor::empty(g.image_dims(), dcols.dtype(), dcols.device())?;
    if out.elem_count() > 0 {
        let mut args = vec![ptr(&dcols)?, ptr(&out)?];
        args.extend(grid_ints(g)?);
        let kernel = kernel_name!("patch_embed_col2im", dcols.dtype(), OP)?;
        device_of(&dcols)?.launch(&Launch::linear(kernel, blocks_for(out.elem_count()), THREADS, &args))?;
    }
    Ok(out)
}

/// See [`crate::reduce::batch_sum`]: partial sums over chunks of the batch,
/// then one pass adding the chunks in order.
pub fn batch_sum(x: &Tensor, out_rows: usize, head: bool) -> Result<(Tensor, Option<Tensor>)> {
    const OP: &str = "batch_sum";
    let x = x.contiguous()?;
    let (batch, row_len, dim) = (x.dims()[0], x.dims()[1] * x.dims()[2], x.dims()[2]);
    let (dtype, device) = (x.dtype(), x.device());
    let dev = device_of(&x)?;
    let (splits, chunk) = batch_split(batch, row_len);
    let partial = Tensor::empty([splits.max(1), row_len], DType::F32, device)?;
    if splits > 0 {
        let args = [
            ptr(&x)?,
            ptr(&partial)?,
            KernelArg::I32(int_arg(OP, "batch", batch)?),
            KernelArg::I64(row_len as i64),
            KernelArg::I32(int_arg(OP, "chunk", chunk)?),
        ];
        let launch = Launch {
            kernel: kernel_name!("embed_batch_sum", dtype, OP)?,
            grid: [blocks_for(row_len), splits as u32, 1],
            block: [THREADS, 1, 1],
            shared_bytes: 0,
            args: &args,
        };
        dev.launch(&launch)?;
    }
    let out = Tensor::empty([out_rows, dim], dtype, device)?;
    let first = if head { Some(Tensor::empty([dim], dtype, device)?) } else { None };
    if out.elem_count() > 0 {
        let args = [
            ptr(&partial)?,
            KernelArg::I32(splits as i32),
            KernelArg::I64(row_len as i64),
            KernelArg::I64(out.elem_count() as i64),
            ptr(&out)?,
            KernelArg::Ptr(first.as_ref().map(|t| t.gpu_ptr()).transpose()?.unwrap_or(0)),
            KernelArg::I32(if head { int_arg(OP, "embedding width", dim)? } else { 0 }),
        ];
        let kernel = kernel_name!("embed_batch_finish", dtype, OP)?;
        dev.launch(&Launch::linear(kernel, blocks_for(out.elem_count()), THREADS, &args))?;
    }
    Ok((out, first))
}

pub fn token_embed_forward(ids: &Indices, table: &Tensor, pos: &Tensor, len: usize) -> Result<Tensor> {
    const OP: &str = "token_embed";
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
            KernelArg::I32(int_arg(OP, "sequence length", len)?),
            KernelArg::I32(int_arg(OP, "embedding width", dim)?),
        ];
        let kernel = kernel_name!("token_embed_forward", table.dtype(), OP)?;
        device_of(&table)?.launch(&Launch::linear(kernel, blocks_for(out.elem_count()), THREADS, &args))?;
    }
    Ok(out)
}

/// Each vocabulary row sums its tokens' gradients in position order, through
/// the ids' grouping by token.
pub fn token_table_backward(grad: &Tensor, ids: &Indices) -> Result<Tensor> {
    const OP: &str = "token_embed";
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
            KernelArg::I32(int_arg(OP, "embedding width", dim)?),
        ];
        let kernel = kernel_name!("token_embed_backward", dtype, OP)?;
        device_of(&grad)?.launch(&Launch::linear(kernel, blocks_for(out.elem_count()), THREADS, &args))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::batch_split;

    #[test]
    fn batch_split_covers_the_batch_within_the_grid_limit() {
        for (batch, row_len) in [(1, 1), (3, 504), (5, 1 << 17), (4096, 17 * 768), (32768, 77 * 512), (7, 1 << 20)] {
            let (splits, chunk) = batch_split(batch, row_len);
            assert!((1..=65535).contains(&splits), "{batch}x{row_len}: {splits}");
            assert!(splits * chunk >= batch && (splits - 1) * chunk < batch, "{batch}x{row_len}: {splits} × {chunk}");
        }
        assert_eq!(batch_split(5, 1 << 17), (2, 3));
        assert_eq!(batch_split(0, 10), (0, 0));
    }
}
