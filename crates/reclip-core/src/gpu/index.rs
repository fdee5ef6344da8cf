use super::{THREADS, blocks_for, device_of, int_arg};
use crate::cpu::reduce::ReduceShape;
use crate::{Device, Error, KernelArg, Launch, Result, Tensor, kernel_name};

/// Reads indices to the host and checks them: a kernel cannot report an
/// out-of-range index, so they are validated before any launch.
fn checked_indices(op: &'static str, ids: &Tensor, size: usize) -> Result<Vec<u32>> {
    let v = ids.to_vec::<u32>()?;
    if let Some(&bad) = v.iter().find(|&&i| i as usize >= size) {
        return Err(Error::IndexOutOfRange { op, index: bad as usize, size });
    }
    Ok(v)
}

fn on_device(v: &[u32], like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(v.to_vec(), [v.len()], &Device::Cpu)?.to_device(like.device())
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

pub fn index_select(t: &Tensor, rs: ReduceShape, ids: &Tensor, dims: Vec<usize>) -> Result<Tensor> {
    let v = checked_indices("index_select", ids, rs.n)?;
    let ids = on_device(&v, t)?;
    let x = t.contiguous()?;
    let out = Tensor::empty(dims, t.dtype(), t.device())?;
    let mut args = vec![KernelArg::Ptr(x.gpu_ptr()?), KernelArg::Ptr(ids.gpu_ptr()?), KernelArg::Ptr(out.gpu_ptr()?)];
    args.extend(common_args(rs, v.len(), "index_select")?);
    launch(t, kernel_name!("index_select", t.dtype(), "index_select")?, out.elem_count(), &args)?;
    Ok(out)
}

/// Positions grouped by target row, stably (`order`), and where each row's
/// group starts (`starts`, rows + 1 entries): a counting sort on the host,
/// what lets every output row sum its contributions in index order.
pub fn group_by_row(ids: &[u32], rows: usize) -> (Vec<u32>, Vec<u32>) {
    let mut starts = vec![0u32; rows + 1];
    for &id in ids {
        starts[id as usize + 1] += 1;
    }
    for r in 0..rows {
        starts[r + 1] += starts[r];
    }
    let mut fill = starts.clone();
    let mut order = vec![0u32; ids.len()];
    for (j, &id) in ids.iter().enumerate() {
        order[fill[id as usize] as usize] = j as u32;
        fill[id as usize] += 1;
    }
    (order, starts)
}

pub fn index_add(t: &Tensor, rs: ReduceShape, ids: &Tensor, src: &Tensor) -> Result<Tensor> {
    let v = checked_indices("index_add", ids, rs.n)?;
    let (order, starts) = group_by_row(&v, rs.n);
    let (order, starts) = (on_device(&order, t)?, on_device(&starts, t)?);
    let (base, src) = (t.contiguous()?, src.contiguous()?);
    let out = Tensor::empty(t.shape().clone(), t.dtype(), t.device())?;
    let mut args = vec![
        KernelArg::Ptr(base.gpu_ptr()?),
        KernelArg::Ptr(src.gpu_ptr()?),
        KernelArg::Ptr(order.gpu_ptr()?),
        KernelArg::Ptr(starts.gpu_ptr()?),
        KernelArg::Ptr(out.gpu_ptr()?),
    ];
    args.extend(common_args(rs, v.len(), "index_add")?);
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
