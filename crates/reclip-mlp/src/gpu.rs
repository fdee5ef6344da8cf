//! Launches of the epilogue kernels (kernels/mlp.cu), and the GEMMs of the
//! linear layers without activation, whose bias and bias gradient are the
//! GEMM's own epilogues (cuBLASLt's on CUDA).

use crate::OP;
use reclip_core::gpu::{THREADS, blocks_for, i32_arg, matmul_epilogue, ptr};
use reclip_core::{DType, GemmEpilogue, GpuDevice, KernelArg, Launch, Result, Tensor, kernel_name};

const TILE_COLS: usize = 32;
const TILE_ROWS: usize = 8;
/// Blocks the column sums aim for: enough to fill a large GPU. The split into
/// row chunks depends on the shape alone, so the order of the bias
/// gradient's sums (and so its value) is the same on every device.
const COLUMN_SUM_BLOCKS: usize = 2048;

/// (chunks, rows per chunk) of the column sums over [rows, cols].
fn row_chunks(rows: usize, cols: usize) -> (usize, usize) {
    let tiles = cols.div_ceil(TILE_COLS).max(1);
    let chunks = COLUMN_SUM_BLOCKS.div_ceil(tiles).clamp(1, rows.div_ceil(TILE_ROWS).max(1));
    let per_chunk = rows.div_ceil(chunks).max(1);
    (rows.div_ceil(per_chunk), per_chunk)
}

/// y = x·Wᵀ + bias for x [rows, in], W [out, in], bias [out]: one GEMM
/// whose epilogue adds the bias.
pub fn linear_bias_forward(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let ((rows, inp), out) = ((x.dims()[0], x.dims()[1]), w.dims()[0]);
    if rows * out == 0 {
        return Tensor::empty([rows, out], x.dtype(), x.device());
    }
    let bias = bias.contiguous()?;
    if inp == 0 {
        // No product to fuse into: every row is the bias.
        return bias.reshape([1, out])?.broadcast_as([rows, out])?.contiguous();
    }
    matmul_epilogue(x, &w.transpose(0, 1)?, GemmEpilogue::Bias { bias: bias.gpu_ptr()? })
}

/// (dW, db) = (dyᵀ·x, Σ_rows dy) for dy [rows, out], x [rows, in]: one GEMM
/// whose epilogue sums its first operand dyᵀ over k = rows.
pub fn weight_bias_grad(dev: &GpuDevice, dy: &Tensor, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let ((rows, out), inp) = ((dy.dims()[0], dy.dims()[1]), x.dims()[1]);
    let (dtype, device) = (dy.dtype(), dy.device());
    if rows * out * inp == 0 {
        // No product to fuse into: dW is empty or zero, db the plain column sums.
        let db = column_sums(dev, dy, None, rows, out)?.1;
        return Ok((Tensor::zeros([out, inp], dtype, device)?, db));
    }
    let db = Tensor::empty([out], dtype, device)?;
    let dw = matmul_epilogue(&dy.transpose(0, 1)?, x, GemmEpilogue::BiasGrad { out: db.gpu_ptr()? })?;
    Ok((dw, db))
}

/// y = act(z + bias) for z [rows, cols]; `act` is the kernels' code.
pub fn bias_act_forward(
    dev: &GpuDevice,
    z: &Tensor,
    bias: &Tensor,
    act: i32,
    rows: usize,
    cols: usize,
) -> Result<Tensor> {
    let (z, bias) = (z.contiguous()?, bias.contiguous()?);
    let y = Tensor::empty(z.shape().clone(), z.dtype(), z.device())?;
    if y.elem_count() > 0 {
        let args = [
            ptr(&z)?,
            ptr(&bias)?,
            ptr(&y)?,
            KernelArg::I64(rows as i64),
            i32_arg(OP, "output features", cols)?,
            KernelArg::I32(act),
        ];
        let kernel = kernel_name!("bias_act_fwd", z.dtype(), OP)?;
        dev.launch(&Launch::linear(kernel, blocks_for(y.elem_count()), THREADS, &args))?;
    }
    Ok(y)
}

/// The bias gradient Σ_rows g of g = dy·act'(z + bias) when `derivative` =
/// (z, bias, act) is given (g is returned too), of dy itself otherwise.
pub fn column_sums(
    dev: &GpuDevice,
    dy: &Tensor,
    derivative: Option<(&Tensor, &Tensor, i32)>,
    rows: usize,
    cols: usize,
) -> Result<(Option<Tensor>, Tensor)> {
    let (dtype, device) = (dy.dtype(), dy.device());
    let dy = dy.contiguous()?;
    let du = derivative.map(|_| Tensor::empty(dy.shape().clone(), dtype, device)).transpose()?;
    if rows == 0 || cols == 0 {
        return Ok((du, Tensor::zeros([cols], dtype, device)?));
    }
    let (chunks, per_chunk) = row_chunks(rows, cols);
    let partial = Tensor::empty([chunks, cols], DType::F32, device)?;
    let cols_arg = i32_arg(OP, "output features", cols)?;
    let tail = [KernelArg::I64(rows as i64), cols_arg];
    let (kernel, args) = match (derivative, &du) {
        (Some((z, bias, act)), Some(du)) => {
            let (z, bias) = (z.contiguous()?, bias.contiguous()?);
            let mut args = vec![ptr(&dy)?, ptr(&z)?, ptr(&bias)?, ptr(du)?, ptr(&partial)?];
            args.extend(tail);
            args.extend([KernelArg::I32(act), KernelArg::I64(per_chunk as i64)]);
            (kernel_name!("bias_act_bwd", dtype, OP)?, args)
        }
        _ => {
            let mut args = vec![ptr(&dy)?, ptr(&partial)?];
            args.extend(tail);
            args.push(KernelArg::I64(per_chunk as i64));
            (kernel_name!("bias_grad", dtype, OP)?, args)
        }
    };
    dev.launch(&Launch {
        kernel,
        grid: [cols.div_ceil(TILE_COLS) as u32, chunks as u32, 1],
        block: [TILE_COLS as u32, TILE_ROWS as u32, 1],
        shared_bytes: 0,
        args: &args,
    })?;
    let db = Tensor::empty([cols], dtype, device)?;
    let args = [ptr(&partial)?, KernelArg::I32(chunks as i32), cols_arg, ptr(&db)?];
    dev.launch(&Launch::linear(kernel_name!("bias_grad_finish", dtype, OP)?, blocks_for(cols), THREADS, &args))?;
    Ok((du, db))
}

#[cfg(test)]
mod tests {
    use super::row_chunks;

    #[test]
    fn row_chunks_cover_the_rows_within_the_grid_limit() {
        for (rows, cols) in [(1, 1), (7, 72), (4096 * 197, 768), (4096 * 77, 2048), (100, 100_000), (3, 5)] {
            let (chunks, per) = row_chunks(rows, cols);
            assert!((1..=65535).contains(&chunks), "{rows}x{cols}: {chunks}");
            assert!(chunks * per >= rows && (chunks - 1) * per < rows, "{rows}x{cols}: {chunks} × {per}");
        }
    }
}
