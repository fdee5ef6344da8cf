//! The loss's building blocks on tensors, each a [`DeviceOp`] whose CPU path
//! is in `cpu` and whose kernel launches are in `gpu`. Intermediate tensors
//! are in the compute dtype: f32 for f32 and bf16 embeddings, f64 for f64
//! (CPU only).

use crate::{cpu, gpu};
use reclip_core::{DType, DeviceOp, Element, GpuDevice, Real, Result, Shape, Tensor};

const OP: &str = "clip_loss";

/// The compute dtype for embeddings of `dtype`.
pub fn compute_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 { DType::F64 } else { DType::F32 }
}

/// Embeddings divided by their norms (compute dtype, [rows, d]) and the norms ([rows]).
pub struct Normalized {
    pub hat: Tensor,
    pub norm: Tensor,
}

/// How d(loss)/dz is made for [`grad_rows`]; see [`cpu::GradTerms`]. The
/// logsumexp tensors are in the compute dtype; `with_dt` asks for the per-row
/// partial sums of d(loss)/dt.
pub struct GradTerms<'a> {
    pub own: Option<(&'a Tensor, f64)>,
    pub other: Option<(&'a Tensor, f64)>,
    pub label_weight: f64,
    pub label_offset: isize,
    pub with_dt: bool,
}

fn rows_and_dim(x: &Tensor) -> (usize, usize) {
    (x.dims()[0], x.dims()[1])
}

fn cpu_scalar<T: Real>(t: &Tensor) -> Result<T> {
    Ok(<T as Element>::from_f64(t.to_scalar()?))
}

/// `x` ([rows, d], any float dtype) normalised row by row.
pub fn normalize(x: &Tensor) -> Result<Normalized> {
    Normalize { x }.run(x)
}

struct Normalize<'a> {
    x: &'a Tensor,
}

impl DeviceOp for Normalize<'_> {
    type Output = Normalized;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Normalized> {
        let (rows, d) = rows_and_dim(self.x);
        let (hat, norm) = cpu::normalize(&self.x.cpu_real::<T>(OP)?, d);
        Ok(Normalized {
            hat: Tensor::from_real(hat, [rows, d], T::DTYPE),
            norm: Tensor::from_real(norm, [rows], T::DTYPE),
        })
    }

    fn gpu(self, device: &GpuDevice) -> Result<Normalized> {
        gpu::normalize(device, self.x)
    }
}

/// Back through the normalisation: d(loss)/dx in `dtype` from d(loss)/dx̂.
pub fn denormalize(x: &Normalized, dhat: &Tensor, dtype: DType) -> Result<Tensor> {
    Denormalize { x, dhat, dtype }.run(&x.hat)
}

struct Denormalize<'a> {
    x: &'a Normalized,
    dhat: &'a Tensor,
    dtype: DType,
}

impl DeviceOp for Denormalize<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let (x, (rows, d)) = (self.x, rows_and_dim(&self.x.hat));
        let dx =
            cpu::denormalize(&x.hat.cpu_real::<T>(OP)?, &x.norm.cpu_real::<T>(OP)?, &self.dhat.cpu_real::<T>(OP)?, d);
        Ok(Tensor::from_real(dx, [rows, d], self.dtype))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::denormalize(device, self.x, self.dhat, self.dtype)
    }
}

/// Per row of `a`: logsumexp of s·a·cᵀ and the logit of column row + `label_offset`.
pub fn lse_rows(a: &Tensor, c: &Tensor, log_scale: &Tensor, label_offset: isize) -> Result<(Tensor, Tensor)> {
    LseRows { a, c, log_scale, label_offset }.run(a)
}

struct LseRows<'a> {
    a: &'a Tensor,
    c: &'a Tensor,
    log_scale: &'a Tensor,
    label_offset: isize,
}

impl DeviceOp for LseRows<'_> {
    type Output = (Tensor, Tensor);
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<(Tensor, Tensor)> {
        let (m, d) = rows_and_dim(self.a);
        let s = cpu::logit_scale(cpu_scalar::<T>(self.log_scale)?);
        let (lse, label) =
            cpu::lse_rows(&self.a.cpu_real::<T>(OP)?, &self.c.cpu_real::<T>(OP)?, d, s, self.label_offset);
        Ok((Tensor::from_real(lse, [m], T::DTYPE), Tensor::from_real(label, [m], T::DTYPE)))
    }

    fn gpu(self, device: &GpuDevice) -> Result<(Tensor, Tensor)> {
        gpu::lse_rows(device, self.a, self.c, self.log_scale, self.label_offset)
    }
}

/// d(loss)/da (compute dtype, [m, d]) and, if asked, the per-row partial sums
/// of d(loss)/dt; `grad` is the loss's upstream gradient ([1], compute dtype).
pub fn grad_rows(
    a: &Tensor,
    c: &Tensor,
    log_scale: &Tensor,
    grad: &Tensor,
    terms: &GradTerms<'_>,
) -> Result<(Tensor, Option<Tensor>)> {
    GradRows { a, c, log_scale, grad, terms }.run(a)
}

struct GradRows<'a> {
    a: &'a Tensor,
    c: &'a Tensor,
    log_scale: &'a Tensor,
    grad: &'a Tensor,
    terms: &'a GradTerms<'a>,
}

impl DeviceOp for GradRows<'_> {
    type Output = (Tensor, Option<Tensor>);
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<(Tensor, Option<Tensor>)> {
        let ((m, d), terms) = (rows_and_dim(self.a), self.terms);
        let s = cpu::logit_scale(cpu_scalar::<T>(self.log_scale)?);
        let own = terms.own.map(|(t, w)| t.cpu_real::<T>(OP).map(|v| (v, w))).transpose()?;
        let other = terms.other.map(|(t, w)| t.cpu_real::<T>(OP).map(|v| (v, w))).transpose()?;
        let cpu_terms = cpu::GradTerms {
            own: own.as_ref().map(|(v, w)| (&v[..], <T as Element>::from_f64(*w))),
            other: other.as_ref().map(|(v, w)| (&v[..], <T as Element>::from_f64(*w))),
            label_weight: <T as Element>::from_f64(terms.label_weight),
            label_offset: terms.label_offset,
        };
        let g = cpu_scalar::<T>(self.grad)?;
        let (da, dt) = cpu::grad_rows(&self.a.cpu_real::<T>(OP)?, &self.c.cpu_real::<T>(OP)?, d, s, g, &cpu_terms);
        let dt = terms.with_dt.then(|| Tensor::from_real(dt, [m], T::DTYPE));
        Ok((Tensor::from_real(da, [m, d], T::DTYPE), dt))
    }

    fn gpu(self, device: &GpuDevice) -> Result<(Tensor, Option<Tensor>)> {
        gpu::grad_rows(device, self.a, self.c, self.log_scale, self.grad, self.terms)
    }
}

/// The loss (shape [], compute dtype) from two (logsumexp, label logit) sets.
pub fn loss_value(lse_a: &Tensor, label_a: &Tensor, lse_b: &Tensor, label_b: &Tensor) -> Result<Tensor> {
    LossValue { lse_a, label_a, lse_b, label_b }.run(lse_a)
}

struct LossValue<'a> {
    lse_a: &'a Tensor,
    label_a: &'a Tensor,
    lse_b: &'a Tensor,
    label_b: &'a Tensor,
}

impl DeviceOp for LossValue<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let v = cpu::loss_value::<T>(
            &self.lse_a.cpu_real(OP)?,
            &self.label_a.cpu_real(OP)?,
            &self.lse_b.cpu_real(OP)?,
            &self.label_b.cpu_real(OP)?,
        );
        Ok(Tensor::from_real(vec![v], Shape::new([]), T::DTYPE))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::loss_value(device, self.lse_a, self.label_a, self.lse_b, self.label_b)
    }
}

/// d(loss)/dt (shape [1], compute dtype) from per-row partial sums.
pub fn dt_value(rows: &[&Tensor], log_scale: &Tensor) -> Result<Tensor> {
    DtValue { rows, log_scale }.run(log_scale)
}

struct DtValue<'a> {
    rows: &'a [&'a Tensor],
    log_scale: &'a Tensor,
}

impl DeviceOp for DtValue<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let parts = self.rows.iter().map(|r| r.cpu_real::<T>(OP)).collect::<Result<Vec<_>>>()?;
        let slices: Vec<&[T]> = parts.iter().map(|p| &p[..]).collect();
        let v = cpu::dt_value(&slices, cpu_scalar::<T>(self.log_scale)?);
        Ok(Tensor::from_real(vec![v], [1], T::DTYPE))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::dt_value(device, self.rows, self.log_scale)
    }
}
