//! The sigmoid loss's building blocks on tensors, each a [`DeviceOp`] whose
//! CPU path is in `cpu` and whose kernel launches are in `gpu`; tensors are
//! in the compute dtype (f32, or f64 on the CPU), the scalars of shape [1].

use super::{cpu, gpu};
use reclip_core::{DeviceOp, Element, GpuDevice, Real, Result, Tensor};

const OP: &str = "siglip_loss";

fn scalar<T: Real>(t: &Tensor) -> Result<T> {
    Ok(<T as Element>::from_f64(t.to_scalar()?))
}

/// Per row of `a`: Σ_j softplus(−y_ij·(s·a_i·c_j + bias)), the matching pair
/// at column row + `label_offset`.
pub fn rows(a: &Tensor, c: &Tensor, log_scale: &Tensor, bias: &Tensor, label_offset: isize) -> Result<Tensor> {
    Rows { a, c, log_scale, bias, label_offset }.run(a)
}

struct Rows<'a> {
    a: &'a Tensor,
    c: &'a Tensor,
    log_scale: &'a Tensor,
    bias: &'a Tensor,
    label_offset: isize,
}

impl DeviceOp for Rows<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let (m, d) = (self.a.dims()[0], self.a.dims()[1]);
        let s = crate::cpu::logit_scale(scalar::<T>(self.log_scale)?);
        let (a, c) = (self.a.cpu_real::<T>(OP)?, self.c.cpu_real::<T>(OP)?);
        let out = cpu::rows(&a, &c, d, s, scalar::<T>(self.bias)?, self.label_offset);
        Ok(Tensor::from_real(out, [m], T::DTYPE))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::rows(device, self.a, self.c, self.log_scale, self.bias, self.label_offset)
    }
}

/// d(loss)/da for a block of the loss of weight `weight` and upstream
/// gradient `grad` ([1]), and with `sums` the per-row partial sums of
/// d(loss)/dt and d(loss)/dbias.
pub struct GradRows<'a> {
    pub a: &'a Tensor,
    pub c: &'a Tensor,
    pub log_scale: &'a Tensor,
    pub bias: &'a Tensor,
    pub grad: &'a Tensor,
    pub weight: f64,
    pub label_offset: isize,
    pub sums: bool,
}

impl DeviceOp for GradRows<'_> {
    type Output = (Tensor, Option<(Tensor, Tensor)>);
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        let (m, d) = (self.a.dims()[0], self.a.dims()[1]);
        let s = crate::cpu::logit_scale(scalar::<T>(self.log_scale)?);
        let gw = scalar::<T>(self.grad)? * <T as Element>::from_f64(self.weight);
        let (a, c) = (self.a.cpu_real::<T>(OP)?, self.c.cpu_real::<T>(OP)?);
        let (da, dt, db) = cpu::grad_rows(&a, &c, d, s, scalar::<T>(self.bias)?, gw, self.label_offset);
        let sums = self.sums.then(|| (Tensor::from_real(dt, [m], T::DTYPE), Tensor::from_real(db, [m], T::DTYPE)));
        Ok((Tensor::from_real(da, [m, d], T::DTYPE), sums))
    }

    fn gpu(self, device: &GpuDevice) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        let GradRows { a, c, log_scale, bias, grad, weight, label_offset, sums } = self;
        gpu::grad_rows(device, a, c, log_scale, bias, grad, weight, label_offset, sums)
    }
}

impl GradRows<'_> {
    /// Runs the sweep on the device of its rows.
    pub fn compute(self) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        let a = self.a;
        self.run(a)
    }
}

/// weight · Σ rows ([1]); zero where `clamp_by` (the log-temperature, for
/// its own gradient) is past the clamp of the scale.
pub fn total(rows: &Tensor, weight: f64, clamp_by: Option<&Tensor>) -> Result<Tensor> {
    Total { rows, weight, clamp_by }.run(rows)
}

struct Total<'a> {
    rows: &'a Tensor,
    weight: f64,
    clamp_by: Option<&'a Tensor>,
}

impl DeviceOp for Total<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let clamped = self.clamp_by.map(scalar::<T>).transpose()?.is_some_and(crate::cpu::scale_is_clamped);
        let v = if clamped {
            T::zero()
        } else {
            cpu::total(&self.rows.cpu_real::<T>(OP)?, <T as Element>::from_f64(self.weight))
        };
        Ok(Tensor::from_real(vec![v], [1], T::DTYPE))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::total(device, self.rows, self.weight, self.clamp_by)
    }
}
