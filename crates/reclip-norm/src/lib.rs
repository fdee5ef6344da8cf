//! reclip's LayerNorm over the last dimension, as torch.nn.LayerNorm (biased
//! variance; open_clip uses eps = 1e-5), each op one tape node with a fused
//! backward:
//!
//! - [`layer_norm`]: y = (x − mean)·rstd·γ + β, saving each row's mean and
//!   rstd = 1/√(var + eps) (f32; f64 for f64 data) for the backward;
//! - [`add_layer_norm`]: r = x + h and y = LayerNorm(r) in one pass, for the
//!   pre-LN transformer block, where each sublayer's output is added to the
//!   residual stream and the next sublayer starts by normalising it. Fusing
//!   saves the LayerNorm's read of r. Its backward is the add's and the
//!   LayerNorm's (the tape records the two as nodes of their own, because a
//!   node has one output).

mod cpu;
mod gpu;

pub use gpu::MAX_BACKWARD_WIDTH;

use reclip_autograd::Var;
use reclip_core::ops::{check_same, check_shape};
use reclip_core::{DType, Device, Error, Real, Result, Tensor, with_real};

const OP: &str = "layer_norm";

/// The normalised output and the statistics the backward pass needs.
pub struct LayerNormOutput {
    pub y: Tensor,
    /// Mean of each row, [rows], in [`stats_dtype`].
    pub mean: Tensor,
    /// 1/√(var + eps) of each row, [rows], in [`stats_dtype`].
    pub rstd: Tensor,
}

pub struct LayerNormGrads {
    pub x: Tensor,
    pub gamma: Tensor,
    pub beta: Tensor,
}

/// The dtype of the saved statistics: f64 for f64 data, f32 otherwise.
pub fn stats_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 { DType::F64 } else { DType::F32 }
}

/// Rows and width of `x` [..., D], checked against `gamma` [D].
fn rows_and_width(x: &Tensor, gamma: &Tensor) -> Result<(usize, usize)> {
    check_same(OP, &[x, gamma])?;
    if !x.dtype().is_float() {
        return Err(Error::DType { op: OP, got: x.dtype(), expected: "f32, bf16 or f64" });
    }
    let Some((&dim, lead)) = x.dims().split_last() else {
        return Err(Error::invalid(OP, "cannot normalise a scalar"));
    };
    if dim == 0 {
        return Err(Error::invalid(OP, format!("the normalised width of {} is zero", x.shape())));
    }
    if gamma.dims() != [dim] {
        return Err(Error::invalid(
            OP,
            format!("gamma must be [{dim}] for input {}, got {}", x.shape(), gamma.shape()),
        ));
    }
    Ok((lead.iter().product(), dim))
}

/// [`rows_and_width`], and the forward's other arguments.
fn check(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<(usize, usize)> {
    let (rows, dim) = rows_and_width(x, gamma)?;
    check_same(OP, &[x, beta])?;
    if beta.dims() != [dim] {
        return Err(Error::invalid(OP, format!("beta must be [{dim}] for input {}, got {}", x.shape(), beta.shape())));
    }
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::invalid(OP, format!("eps must be finite and non-negative, got {eps}")));
    }
    Ok((rows, dim))
}

pub fn layer_norm_forward(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<LayerNormOutput> {
    let (rows, dim) = check(x, gamma, beta, eps)?;
    match x.device() {
        Device::Cpu => with_real!(x.dtype(), OP, T => {
            let (y, mean, rstd) = cpu::forward::<T>(
                &x.cpu_real::<T>(OP)?,
                &gamma.cpu_real::<T>(OP)?,
                &beta.cpu_real::<T>(OP)?,
                dim,
                <T as Real>::from_f32(eps),
            );
            let stats = stats_dtype(x.dtype());
            Ok(LayerNormOutput {
                y: Tensor::from_real(y, x.shape().clone(), x.dtype()),
                mean: Tensor::from_real(mean, [rows], stats),
                rstd: Tensor::from_real(rstd, [rows], stats),
            })
        }),
        Device::Gpu(_) => Ok(gpu::forward(x, None, gamma, beta, eps, rows, dim)?.0),
    }
}

/// r = x + h (rounded to the dtype) and LayerNorm(r), with r's statistics.
pub fn add_layer_norm_forward(
    x: &Tensor,
    h: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> Result<(Tensor, LayerNormOutput)> {
    let (rows, dim) = check(x, gamma, beta, eps)?;
    check_same("add_layer_norm", &[x, h])?;
    check_shape("add_layer_norm", h, x.dims())?;
    match x.device() {
        Device::Cpu => {
            let r = x.add(h)?;
            let out = layer_norm_forward(&r, gamma, beta, eps)?;
            Ok((r, out))
        }
        Device::Gpu(_) => {
            let (out, r) = gpu::forward(x, Some(h), gamma, beta, eps, rows, dim)?;
            Ok((r.expect("the residual kernel returns r"), out))
        }
    }
}

/// Gradients of x, gamma and beta from the output gradient `dy` and the
/// forward's input `x` and statistics.
pub fn layer_norm_backward(
    dy: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
) -> Result<LayerNormGrads> {
    let (rows, dim) = rows_and_width(x, gamma)?;
    check_same(OP, &[x, dy])?;
    check_shape(OP, dy, x.dims())?;
    check_same(OP, &[mean, rstd])?;
    check_shape(OP, mean, &[rows])?;
    check_shape(OP, rstd, &[rows])?;
    if mean.dtype() != stats_dtype(x.dtype()) || !mean.device().same(x.device()) {
        return Err(Error::invalid(
            OP,
            format!(
                "statistics must be {} on {}, got {} on {}",
                stats_dtype(x.dtype()),
                x.device(),
                mean.dtype(),
                mean.device()
            ),
        ));
    }
    match x.device() {
        Device::Cpu => with_real!(x.dtype(), OP, T => {
            let (dx, dgamma, dbeta) = cpu::backward::<T>(
                &dy.cpu_real::<T>(OP)?,
                &x.cpu_real::<T>(OP)?,
                &gamma.cpu_real::<T>(OP)?,
                &mean.cpu_real::<T>(OP)?,
                &rstd.cpu_real::<T>(OP)?,
                dim,
            );
            Ok(LayerNormGrads {
                x: Tensor::from_real(dx, x.shape().clone(), x.dtype()),
                gamma: Tensor::from_real(dgamma, [dim], x.dtype()),
                beta: Tensor::from_real(dbeta, [dim], x.dtype()),
            })
        }),
        Device::Gpu(_) => gpu::backward(dy, x, gamma, mean, rstd, rows, dim),
    }
}

/// Records the LayerNorm node of `x` whose forward already ran.
fn record(x: &Var, gamma: &Var, beta: &Var, out: LayerNormOutput) -> Result<Var> {
    let LayerNormOutput { y, mean, rstd } = out;
    let (xs, gs) = (x.tensor().clone(), gamma.tensor().clone());
    Var::from_op(OP, &[x, gamma, beta], y, move |g: &Tensor, needs: &[bool]| {
        let grads = layer_norm_backward(g, &xs, &gs, &mean, &rstd)?;
        Ok(vec![needs[0].then_some(grads.x), needs[1].then_some(grads.gamma), needs[2].then_some(grads.beta)])
    })
}

/// LayerNorm of `x` [..., D] over its last dimension with `gamma`, `beta` [D].
pub fn layer_norm(x: &Var, gamma: &Var, beta: &Var, eps: f32) -> Result<Var> {
    let out = layer_norm_forward(x.tensor(), gamma.tensor(), beta.tensor(), eps)?;
    record(x, gamma, beta, out)
}

/// The residual stream's update and the next sublayer's normalised input:
/// returns (r, y) with r = x + h and y = LayerNorm(r), computed in one pass.
pub fn add_layer_norm(x: &Var, h: &Var, gamma: &Var, beta: &Var, eps: f32) -> Result<(Var, Var)> {
    let (r, out) = add_layer_norm_forward(x.tensor(), h.tensor(), gamma.tensor(), beta.tensor(), eps)?;
    let r = Var::from_op("residual_add", &[x, h], r, |g: &Tensor, needs: &[bool]| {
        Ok(vec![needs[0].then(|| g.clone()), needs[1].then(|| g.clone())])
    })?;
    let y = record(&r, gamma, beta, out)?;
    Ok((r, y))
}
