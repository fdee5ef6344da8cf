//! Launches of the batch-sum kernels (kernels/embed.cu) on a GPU device: the
//! CUDA runtime or the emulator.

use reclip_core::gpu::{THREADS, blocks_for, i32_arg, optional_ptr, ptr};
use reclip_core::{DType, GpuDevice, KernelArg, Launch, Result, Tensor, kernel_name};

const OP: &str = "batch_sum";

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

/// See [`super::batch_sum`]: partial sums over chunks of the batch, then one
/// pass adding the chunks in order.
pub fn sum(dev: &GpuDevice, x: &Tensor, out_rows: usize, head: bool) -> Result<(Tensor, Option<Tensor>)> {
    let x = x.contiguous()?;
    let (batch, row_len, dim) = (x.dims()[0], x.dims()[1] * x.dims()[2], x.dims()[2]);
    let (dtype, device) = (x.dtype(), x.device());
    let (splits, chunk) = batch_split(batch, row_len);
    let partial = Tensor::empty([splits.max(1), row_len], DType::F32, device)?;
    if splits > 0 {
        let args = [
            ptr(&x)?,
            ptr(&partial)?,
            i32_arg(OP, "batch", batch)?,
            KernelArg::I64(row_len as i64),
            i32_arg(OP, "chunk", chunk)?,
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
            optional_ptr(first.as_ref())?,
            if head { i32_arg(OP, "embedding width", dim)? } else { KernelArg::I32(0) },
        ];
        let kernel = kernel_name!("embed_batch_finish", dtype, OP)?;
        dev.launch(&Launch::linear(kernel, blocks_for(out.elem_count()), THREADS, &args))?;
    }
    Ok((out, first))
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
