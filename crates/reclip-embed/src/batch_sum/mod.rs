//! The batch sum behind the positional (and class) embeddings' gradients:
//! both are added to every image or sequence of a batch, so their gradient is
//! the output gradient summed over the batch.

mod cpu;
mod gpu;

use reclip_core::{DeviceOp, Error, GpuDevice, Real, Result, Tensor};

const OP: &str = "batch_sum";

/// The sum on one device: `x` [B, rows, dim] into `out_rows` rows.
struct BatchSum<'a> {
    x: &'a Tensor,
    rows: usize,
    dim: usize,
    out_rows: usize,
    head: bool,
}

impl DeviceOp for BatchSum<'_> {
    type Output = (Tensor, Option<Tensor>);
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Self::Output> {
        let (x, dim) = (self.x, self.dim);
        let sums = cpu::sum::<T>(&x.cpu_real::<T>(OP)?, self.rows * dim, self.out_rows * dim);
        let first = self.head.then(|| Tensor::from_real(sums[..dim].to_vec(), [dim], x.dtype()));
        Ok((Tensor::from_real(sums, [self.out_rows, dim], x.dtype()), first))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Self::Output> {
        gpu::sum(device, self.x, self.out_rows, self.head)
    }
}

/// Σ_b x[b] of `x` [B, R, D], as [out_rows, D] with rows R.. zero (a
/// positional table longer than the sequence), and, when `head`, its first
/// row again as [D].
pub fn batch_sum(x: &Tensor, out_rows: usize, head: bool) -> Result<(Tensor, Option<Tensor>)> {
    let &[_, rows, dim] = x.dims() else {
        return Err(Error::invalid(OP, format!("expected [B, R, D], got shape {}", x.shape())));
    };
    if out_rows < rows {
        return Err(Error::invalid(OP, format!("{out_rows} output rows cannot hold {rows} summed rows")));
    }
    BatchSum { x, rows, dim, out_rows, head }.run(x)
}
