//! The batch sum behind the positional (and class) embeddings' gradients:
//! both are added to every image or sequence of a batch, so their gradient is
//! the output gradient summed over the batch.

use crate::{cpu, gpu};
use reclip_core::{Device, Error, Result, Tensor, with_real};

/// Σ_b x[b] of `x` [B, R, D], as [out_rows, D] with rows R.. zero (a
/// positional table longer than the sequence), and, when `head`, its first
/// row again as [D].
pub fn batch_sum(x: &Tensor, out_rows: usize, head: bool) -> Result<(Tensor, Option<Tensor>)> {
    let &[_, rows, dim] = x.dims() else {
        return Err(Error::invalid("batch_sum", format!("expected [B, R, D], got shape {}", x.shape())));
    };
    if out_rows < rows {
        return Err(Error::invalid("batch_sum", format!("{out_rows} output rows cannot hold {rows} summed rows")));
    }
    match x.device() {
        Device::Cpu => with_real!(x.dtype(), "batch_sum", T => {
            let sums = cpu::batch_sum::<T>(&x.cpu_real::<T>("batch_sum")?, rows * dim, out_rows * dim);
            let first = head.then(|| Tensor::from_real(sums[..dim].to_vec(), [dim], x.dtype()));
            Ok((Tensor::from_real(sums, [out_rows, dim], x.dtype()), first))
        }),
        Device::Gpu(_) => gpu::batch_sum(x, out_rows, head),
    }
}
