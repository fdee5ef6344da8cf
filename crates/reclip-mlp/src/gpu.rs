//! Launches of the activation and bias-gradient kernels (kernels/mlp.cu), and
//! the GEMMs whose epilogues carry the linear layers' biases, their
//! gradients, and GELU's tanh approximation (cuBLASLt's on CUDA).

use crate::OP;
use reclip_core::gpu::{THREADS, blocks_for, i32_arg, map_form, matmul_epilogue, ptr};
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
        let db = column_sums(dev, dy, rows, out)?;
        return Ok((Tensor::zeros([out, inp], dtype, device)?, db));
    }
    let db = Tensor::empty([out], dtype, device)?;
    let dw = matmul_epilogue(&dy.transpose(0, 1)?, x, GemmEpilogue::BiasGrad { out: db.gpu_ptr()? })?;
    Ok((dw, db))
}

/// (h, u) = (gelu_tanh(u), u) for u = x·Wᵀ + bias, x [rows, in], W [out,
/// in], bias [out]: one GEMM whose epilogue adds the bias, applies GELU's
/// tanh approximation and saves u. A non-empty product with out a multiple
/// of 8 (u's rows are its ld).
pub fn linear_gelu_tanh_forward(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<(Tensor, Tensor)> {
    let (rows, out) = (x.dims()[0], w.dims()[0]);
    let (bias, u) = (bias.contiguous()?, Tensor::empty([rows, out], x.dtype(), x.device())?);
    let epilogue = GemmEpilogue::GeluAuxBias { bias: bias.gpu_ptr()?, aux: u.gpu_ptr()?, ld_aux: out };
    Ok((matmul_epilogue(x, &w.transpose(0, 1)?, epilogue)?, u))
}

/// (du, db) for du = (dy·W)·gelu_tanh'(u), db = Σ_rows du, with dy [rows,
/// out], W [out, hidden] (the next layer's weight) and u [rows, hidden] as
/// [`linear_gelu_tanh_forward`] saved it: one GEMM whose epilogue applies
/// GELU's derivative and sums the bias gradient.
pub fn gelu_tanh_hidden_grad(dy: &Tensor, w: &Tensor, u: &Tensor) -> Result<(Tensor, Tensor)> {
    let hidden = w.dims()[1];
    let (u, db) = (u.contiguous()?, Tensor::empty([hidden], dy.dtype(), dy.device())?);
    let epilogue = GemmEpilogue::DGeluBiasGrad { aux: u.gpu_ptr()?, ld_aux: hidden, out: db.gpu_ptr()? };
    Ok((matmul_epilogue(dy, w, epilogue)?, db))
}

/// h = act(u); `act` is the kernels' code.
pub fn act_forward(dev: &GpuDevice, u: &Tensor, act: i32) -> Result<Tensor> {
    let u = u.contiguous()?;
    let h = Tensor::empty(u.shape().clone(), u.dtype(), u.device())?;
    let n = u.elem_count();
    if n > 0 {
        let ptrs = [u.gpu_ptr()?, h.gpu_ptr()?];
        let kernels = (kernel_name!("act_fwd", u.dtype(), OP)?, kernel_name!("act_fwd_vec", u.dtype(), OP)?);
        let (kernel, blocks) = map_form(kernels.0, kernels.1, u.dtype(), n, &ptrs);
        let args = [KernelArg::Ptr(ptrs[0]), KernelArg::Ptr(ptrs[1]), KernelArg::I64(n as i64), KernelArg::I32(act)];
        dev.launch(&Launch::linear(kernel, blocks, THREADS, &args))?;
    }
    Ok(h)
}

/// du = dh·act'(u); `act` is the kernels' code.
pub fn act_backward(dev: &GpuDevice, dh: &Tensor, u: &Tensor, act: i32) -> Result<Tensor> {
    let (dh, u) = (dh.contiguous()?, u.contiguous()?);
    let du = Tensor::empty(u.shape().clone(), u.dtype(), u.device())?;
    let n = u.elem_count();
    if n > 0 {
        let ptrs = [dh.gpu_ptr()?, u.gpu_ptr()?, du.gpu_ptr()?];
        let kernels = (kernel_name!("act_bwd", u.dtype(), OP)?, kernel_name!("act_bwd_vec", u.dtype(), OP)?);
        let (kernel, blocks) = map_form(kernels.0, kernels.1, u.dtype(), n, &ptrs);
        let mut args: Vec<KernelArg> = ptrs.iter().map(|&p| KernelArg::Ptr(p)).collect();
        args.extend([KernelArg::I64(n as i64), KernelArg::I32(act)]);
        dev.launch(&Launch::linear(kernel, blocks, THREADS, &args))?;
    }
    Ok(du)
}

/// The bias gradient Σ_rows dy of dy [rows, cols].
pub fn column_sums(dev: &GpuDevice, dy: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
    let (dtype, device) = (dy.dtype(), dy.device());
    let dy = dy.contiguous()?;
    if rows == 0 || cols == 0 {
        return Tensor::zeros([cols], dtype, device);
    }
    let (chunks, per_chunk) = row_chunks(rows, cols);
    let partial = Tensor::empty([chunks, cols], DType::F32, device)?;
    let cols_arg = i32_arg(OP, "output features", cols)?;
    let args = [ptr(&dy)?, ptr(&partial)?, KernelArg::I64(rows as i64), cols_arg, KernelArg::I64(per_chunk as i64)];
    dev.launch(&Launch {
        kernel: kernel_name!("bias_grad", dtype, OP)?,
        grid: [cols.div_ceil(TILE_COLS) as u32, chunks as u32, 1],
        block: [TILE_COLS as u32, TILE_ROWS as u32, 1],
        shared_bytes: 0,
        args: &args,
    })?;
    let db = Tensor::empty([cols], dtype, device)?;
    let args = [ptr(&partial)?, KernelArg::I32(chunks as i32), cols_arg, ptr(&db)?];
    dev.launch(&Launch::linear(kernel_name!("bias_grad_finish", dtype, OP)?, blocks_for(cols), THREADS, &args))?;
    Ok(db)
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
