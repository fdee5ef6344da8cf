use super::{THREADS, blocks_for, device_of, int_arg, vector_form};
use crate::cpu::reduce::ReduceShape;
use crate::{DType, KernelArg, Launch, Result, Tensor, kernel_name};

/// Rows per 256-thread block of the row kernels (one warp each).
const ROWS_PER_BLOCK: usize = 8;

/// Launches the row variant (`inner == 1`) or the column variant of a
/// reduction over [outer, n, inner]; `outputs` are pointers written first.
fn launch_reduction(
    x: &Tensor,
    rs: ReduceShape,
    rows: &'static str,
    cols: &'static str,
    outputs: &[KernelArg],
    trailing: &[KernelArg],
) -> Result<()> {
    let mut args = vec![KernelArg::Ptr(x.gpu_ptr()?)];
    args.extend_from_slice(outputs);
    args.push(KernelArg::I64(rs.outer as i64));
    args.push(KernelArg::I32(int_arg("reduce", "reduced dimension", rs.n)?));
    let launch = if rs.inner == 1 {
        args.extend_from_slice(trailing);
        Launch::linear(rows, rs.outer.div_ceil(ROWS_PER_BLOCK) as u32, THREADS, &args)
    } else {
        args.push(KernelArg::I64(rs.inner as i64));
        args.extend_from_slice(trailing);
        Launch::linear(cols, blocks_for(rs.outer * rs.inner), THREADS, &args)
    };
    device_of(x)?.launch(&launch)
}

/// Sum over the middle dimension; the result is flat [outer * inner].
pub fn sum(t: &Tensor, rs: ReduceShape) -> Result<Tensor> {
    let x = t.contiguous()?;
    let out = Tensor::empty([rs.outer * rs.inner], t.dtype(), t.device())?;
    if rs.outer * rs.inner == 0 {
        return Ok(out);
    }
    if rs.n == 0 {
        return Tensor::zeros([rs.outer * rs.inner], t.dtype(), t.device());
    }
    let rows = kernel_name!("sum_rows", t.dtype(), "sum")?;
    let cols = kernel_name!("sum_cols", t.dtype(), "sum")?;
    launch_reduction(&x, rs, rows, cols, &[KernelArg::Ptr(out.gpu_ptr()?)], &[])?;
    Ok(out)
}

/// Maximum over the middle dimension and its first index; flat results.
pub fn max(t: &Tensor, rs: ReduceShape) -> Result<(Tensor, Tensor)> {
    let x = t.contiguous()?;
    let out = Tensor::empty([rs.outer * rs.inner], t.dtype(), t.device())?;
    let arg = Tensor::empty([rs.outer * rs.inner], DType::U32, t.device())?;
    if rs.outer * rs.inner > 0 {
        let rows = kernel_name!("max_rows", t.dtype(), "max")?;
        let cols = kernel_name!("max_cols", t.dtype(), "max")?;
        let outputs = [KernelArg::Ptr(out.gpu_ptr()?), KernelArg::Ptr(arg.gpu_ptr()?)];
        launch_reduction(&x, rs, rows, cols, &outputs, &[])?;
    }
    Ok((out, arg))
}

/// Softmax or log-softmax over the middle dimension.
pub fn softmax(t: &Tensor, rs: ReduceShape, log: bool) -> Result<Tensor> {
    let x = t.contiguous()?;
    let out = Tensor::empty(t.shape().clone(), t.dtype(), t.device())?;
    if x.elem_count() > 0 {
        // Rows of whole 16-byte packs at aligned addresses take the vector form.
        let rows = if vector_form(t.dtype(), rs.n, &[x.gpu_ptr()?, out.gpu_ptr()?]) {
            kernel_name!("softmax_rows_vec", t.dtype(), "softmax")?
        } else {
            kernel_name!("softmax_rows", t.dtype(), "softmax")?
        };
        let cols = kernel_name!("softmax_cols", t.dtype(), "softmax")?;
        launch_reduction(&x, rs, rows, cols, &[KernelArg::Ptr(out.gpu_ptr()?)], &[KernelArg::I32(log as i32)])?;
    }
    Ok(out)
}
