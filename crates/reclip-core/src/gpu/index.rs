use super::{THREADS, blocks_for, device_of, int_arg};
use crate::cpu::reduce::ReduceShape;
use crate::{Error, Indices, KernelArg, Launch, Result, Tensor, kernel_name};

/// Reads indices to the host and checks them: a kernel cannot report an
/// out-of-range index, so they are validated before any launch.
fn checked_indices(op: &'static str, ids: &Tensor, size: usize) -> Result<Vec<u32>> {
    let v = ids.to_vec::<u32>()?;
    if let Some(&bad) = v.iter().find(|&&i| i as usize >= size) {
        return Err(Error::IndexOutOfRange { op, index: bad as usize, size });
    }
    Ok(v)
}

fn common_args(rs: ReduceShape, m: usize, op: &'static str) -> Result<[KernelArg; 4]> {
    Ok([
        KernelArg::I64(rs.outer as i64),
        KernelArg::I32(int_arg(op, "indexed dimension", rs.n)?),
        KernelArg::I64(rs.inner as i64),
        KernelArg::I32(int_arg(op, "index count", m)?),
    ])
}

fn launch(t: &Tensor, kernel: &'static str, n: usize, args: &[KernelArg]) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    device_of(t)?.launch(&Launch::linear(kernel, blocks_for(n), THREADS, args))
}

pub fn index_select(t: &Tensor, rs: ReduceShape, ids: &Indices, dims: Vec<usize>) -> Result<Tensor> {
    let x = t.contiguous()?;
    let out = Tensor::empty(dims, t.dtype(), t.device())?;
    let mut args =
        vec![KernelArg::Ptr(x.gpu_ptr()?), KernelArg::Ptr(ids.gpu_ids()?.gpu_ptr()?), KernelArg::Ptr(out.gpu_ptr()?)];
    args.extend(common_args(rs, ids.len(), "index_select")?);
    launch(t, kernel_name!("index_select", t.dtype(), "index_select")?, out.elem_count(), &args)?;
    Ok(out)
}

/// Every output row sums its contributions in index order, through the
/// indices' grouping by target row.
pub fn index_add(t: &Tensor, rs: ReduceShape, ids: &Indices, src: &Tensor) -> Result<Tensor> {
    let (order, starts) = ids.gpu_groups()?;
    let (base, src) = (t.contiguous()?, src.contiguous()?);
    let out = Tensor::empty(t.shape().clone(), t.dtype(), t.device())?;
    let mut args = vec![
        KernelArg::Ptr(base.gpu_ptr()?),
        KernelArg::Ptr(src.gpu_ptr()?),
        KernelArg::Ptr(order.gpu_ptr()?),
        KernelArg::Ptr(starts.gpu_ptr()?),
        KernelArg::Ptr(out.gpu_ptr()?),
    ];
    args.extend(common_args(rs, ids.len(), "index_add")?);
    launch(t, kernel_name!("index_add", t.dtype(), "index_add")?, out.elem_count(), &args)?;
    Ok(out)
}

pub fn gather(t: &Tensor, rs: ReduceShape, index: &Tensor, m: usize) -> Result<Tensor> {
    checked_indices("gather", index, rs.n)?;
    let (x, index) = (t.contiguous()?, index.to_device(t.device())?.contiguous()?);
    let out = Tensor::empty(index.shape().clone(), t.dtype(), t.device())?;
    let mut args = vec![KernelArg::Ptr(x.gpu_ptr()?), KernelArg::Ptr(index.gpu_ptr()?), KernelArg::Ptr(out.gpu_ptr()?)];
    args.extend(common_args(rs, m, "gather")?);
    launch(t, kernel_name!("gather", t.dtype(), "gather")?, out.elem_count(), &args)?;
    Ok(out)
}

pub fn scatter_add(t: &Tensor, rs: ReduceShape, index: &Tensor, src: &Tensor, m: usize) -> Result<Tensor> {
    checked_indices("scatter_add", index, rs.n)?;
    let (base, index, src) = (t.contiguous()?, index.to_device(t.device())?.contiguous()?, src.contiguous()?);
    let out = Tensor::empty(t.shape().clone(), t.dtype(), t.device())?;
    let mut args = vec![
        KernelArg::Ptr(base.gpu_ptr()?),
        KernelArg::Ptr(index.gpu_ptr()?),
        KernelArg::Ptr(src.gpu_ptr()?),
        KernelArg::Ptr(out.gpu_ptr()?),
    ];
    args.extend(common_args(rs, m, "scatter_add")?);
    launch(t, kernel_name!("scatter_add", t.dtype(), "scatter_add")?, out.elem_count(), &args)?;
    Ok(out)
}
