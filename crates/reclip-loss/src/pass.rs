//! The loss's building blocks on tensors, each dispatching once on the device
//! to the CPU path (`cpu`) or the kernels (`gpu`). Intermediate tensors are in
//! the compute dtype: f32 for f32 and bf16 embeddings, f64 for f64 (CPU only).

use crate::{cpu, gpu};
use reclip_core::{DType, Device, Element, Real, Result, Shape, Tensor, with_real};

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
    let (rows, d) = rows_and_dim(x);
    match x.device() {
        Device::Cpu => with_real!(x.dtype(), OP, T => {
            let (hat, norm) = cpu::normalize(&x.cpu_real::<T>(OP)?, d);
            Ok(Normalized {
                hat: Tensor::from_real(hat, [rows, d], T::DTYPE),
                norm: Tensor::from_real(norm, [rows], T::DTYPE),
            })
        }),
        Device::Gpu(_) => gpu::normalize(x),
    }
}

/// Back through the normalisation: d(loss)/dx in `dtype` from d(loss)/dx̂.
pub fn denormalize(x: &Normalized, dhat: &Tensor, dtype: DType) -> Result<Tensor> {
    let (rows, d) = rows_and_dim(&x.hat);
    match x.hat.device() {
        Device::Cpu => with_real!(x.hat.dtype(), OP, T => {
            let dx = cpu::denormalize(&x.hat.cpu_real::<T>(OP)?, &x.norm.cpu_real::<T>(OP)?, &dhat.cpu_real::<T>(OP)?, d);
            Ok(Tensor::from_real(dx, [rows, d], dtype))
        }),
        Device::Gpu(_) => gpu::denormalize(x, dhat, dtype),
    }
}

/// Per row of `a`: logsumexp of s·a·cᵀ and the logit of column row + `label_offset`.
pub fn lse_rows(a: &Tensor, c: &Tensor, log_scale: &Tensor, label_offset: isize) -> Result<(Tensor, Tensor)> {
    let (m, d) = rows_and_dim(a);
    match a.device() {
        Device::Cpu => with_real!(a.dtype(), OP, T => {
            let s = cpu::logit_scale(cpu_scalar::<T>(log_scale)?);
            let (lse, label) = cpu::lse_rows(&a.cpu_real::<T>(OP)?, &c.cpu_real::<T>(OP)?, d, s, label_offset);
            Ok((Tensor::from_real(lse, [m], T::DTYPE), Tensor::from_real(label, [m], T::DTYPE)))
        }),
        Device::Gpu(_) => gpu::lse_rows(a, c, log_scale, label_offset),
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
    let (m, d) = rows_and_dim(a);
    match a.device() {
        Device::Cpu => with_real!(a.dtype(), OP, T => {
            let s = cpu::logit_scale(cpu_scalar::<T>(log_scale)?);
            let own = terms.own.map(|(t, w)| t.cpu_real::<T>(OP).map(|v| (v, w))).transpose()?;
            let other = terms.other.map(|(t, w)| t.cpu_real::<T>(OP).map(|v| (v, w))).transpose()?;
            let cpu_terms = cpu::GradTerms {
                own: own.as_ref().map(|(v, w)| (&v[..], <T as Element>::from_f64(*w))),
                other: other.as_ref().map(|(v, w)| (&v[..], <T as Element>::from_f64(*w))),
                label_weight: <T as Element>::from_f64(terms.label_weight),
                label_offset: terms.label_offset,
            };
            let g = cpu_scalar::<T>(grad)?;
            let (da, dt) = cpu::grad_rows(&a.cpu_real::<T>(OP)?, &c.cpu_real::<T>(OP)?, d, s, g, &cpu_terms);
            let dt = terms.with_dt.then(|| Tensor::from_real(dt, [m], T::DTYPE));
            Ok((Tensor::from_real(da, [m, d], T::DTYPE), dt))
        }),
        Device::Gpu(_) => gpu::grad_rows(a, c, log_scale, grad, terms),
    }
}

/// The loss (shape [], compute dtype) from two (logsumexp, label logit) sets.
pub fn loss_value(lse_a: &Tensor, label_a: &Tensor, lse_b: &Tensor, label_b: &Tensor) -> Result<Tensor> {
    match lse_a.device() {
        Device::Cpu => with_real!(lse_a.dtype(), OP, T => {
            let v = cpu::loss_value::<T>(
                &lse_a.cpu_real(OP)?,
                &label_a.cpu_real(OP)?,
                &lse_b.cpu_real(OP)?,
                &label_b.cpu_real(OP)?,
            );
            Ok(Tensor::from_real(vec![v], Shape::new([]), T::DTYPE))
        }),
        Device::Gpu(_) => gpu::loss_value(lse_a, label_a, lse_b, label_b),
    }
}

/// d(loss)/dt (shape [1], compute dtype) from per-row partial sums.
pub fn dt_value(rows: &[&Tensor], log_scale: &Tensor) -> Result<Tensor> {
    match log_scale.device() {
        Device::Cpu => with_real!(log_scale.dtype(), OP, T => {
            let parts = rows.iter().map(|r| r.cpu_real::<T>(OP)).collect::<Result<Vec<_>>>()?;
            let slices: Vec<&[T]> = parts.iter().map(|p| &p[..]).collect();
            let v = cpu::dt_value(&slices, cpu_scalar::<T>(log_scale)?);
            Ok(Tensor::from_real(vec![v], [1], T::DTYPE))
        }),
        Device::Gpu(_) => gpu::dt_value(rows, log_scale),
    }
}
