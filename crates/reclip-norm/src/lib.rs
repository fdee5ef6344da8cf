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

use reclip_autograd::Op;
use reclip_autograd::Var;
use reclip_core::ops::{check_same, check_shape};
use reclip_core::{DType, DeviceOp, Error, GpuDevice, Real, Result, Tensor};

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

/// The forward on one device: LayerNorm of `x`, or with `h` of r = x + h
/// (returned too).
struct Forward<'a> {
    x: &'a Tensor,
    h: Option<&'a Tensor>,
    gamma: &'a Tensor,
    beta: &'a Tensor,
    eps: f32,
    rows: usize,
    dim: usize,
}

impl DeviceOp for Forward<'_> {
    type Output = (LayerNormOutput, Option<Tensor>);
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Self::Output> {
        // The CPU rounds r to the dtype as the kernel does, then normalises it.
        let r = self.h.map(|h| self.x.add(h)).transpose()?;
        let x = r.as_ref().unwrap_or(self.x);
        let (y, mean, rstd) = cpu::forward::<T>(
            &x.cpu_real::<T>(OP)?,
            &self.gamma.cpu_real::<T>(OP)?,
            &self.beta.cpu_real::<T>(OP)?,
            self.dim,
            <T as Real>::from_f32(self.eps),
        );
        let stats = stats_dtype(x.dtype());
        let out = LayerNormOutput {
            y: Tensor::from_real(y, x.shape().clone(), x.dtype()),
            mean: Tensor::from_real(mean, [self.rows], stats),
            rstd: Tensor::from_real(rstd, [self.rows], stats),
        };
        Ok((out, r))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Self::Output> {
        gpu::forward(device, self.x, self.h, self.gamma, self.beta, self.eps, self.rows, self.dim)
    }
}

pub fn layer_norm_forward(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<LayerNormOutput> {
    let (rows, dim) = check(x, gamma, beta, eps)?;
    Ok(Forward { x, h: None, gamma, beta, eps, rows, dim }.run(x)?.0)
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
    let (out, r) = Forward { x, h: Some(h), gamma, beta, eps, rows, dim }.run(x)?;
    Ok((r.expect("the residual forward returns r"), out))
}

/// The backward on one device.
struct Backward<'a> {
    dy: &'a Tensor,
    x: &'a Tensor,
    gamma: &'a Tensor,
    mean: &'a Tensor,
    rstd: &'a Tensor,
    rows: usize,
    dim: usize,
}

impl DeviceOp for Backward<'_> {
    type Output = LayerNormGrads;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<LayerNormGrads> {
        let (dx, dgamma, dbeta) = cpu::backward::<T>(
            &self.dy.cpu_real::<T>(OP)?,
            &self.x.cpu_real::<T>(OP)?,
            &self.gamma.cpu_real::<T>(OP)?,
            &self.mean.cpu_real::<T>(OP)?,
            &self.rstd.cpu_real::<T>(OP)?,
            self.dim,
        );
        let dtype = self.x.dtype();
        Ok(LayerNormGrads {
            x: Tensor::from_real(dx, self.x.shape().clone(), dtype),
            gamma: Tensor::from_real(dgamma, [self.dim], dtype),
            beta: Tensor::from_real(dbeta, [self.dim], dtype),
        })
    }

    fn gpu(self, device: &GpuDevice) -> Result<LayerNormGrads> {
        gpu::backward(device, self.dy, self.x, self.gamma, self.mean, self.rstd, self.rows, self.dim)
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
    Backward { dy, x, gamma, mean, rstd, rows, dim }.run(x)
}

/// The LayerNorm node: inputs x, gamma, beta.
struct LayerNorm {
    eps: f32,
}

/// The LayerNorm's input, gamma and statistics.
struct LayerNormSaved {
    x: Tensor,
    gamma: Tensor,
    mean: Tensor,
    rstd: Tensor,
}

impl Op<3> for LayerNorm {
    const NAME: &'static str = OP;
    type Saved = LayerNormSaved;

    fn forward(&self, [x, gamma, beta]: [&Tensor; 3], _: [bool; 3]) -> Result<(Tensor, LayerNormSaved)> {
        let out = layer_norm_forward(x, gamma, beta, self.eps)?;
        Ok(LayerNorm::saving(x, gamma, out))
    }

    fn backward(self, s: LayerNormSaved, grad: &Tensor, needs: [bool; 3]) -> Result<[Option<Tensor>; 3]> {
        let grads = layer_norm_backward(grad, &s.x, &s.gamma, &s.mean, &s.rstd)?;
        Ok([needs[0].then_some(grads.x), needs[1].then_some(grads.gamma), needs[2].then_some(grads.beta)])
    }
}

impl LayerNorm {
    fn saving(x: &Tensor, gamma: &Tensor, out: LayerNormOutput) -> (Tensor, LayerNormSaved) {
        let LayerNormOutput { y, mean, rstd } = out;
        (y, LayerNormSaved { x: x.clone(), gamma: gamma.clone(), mean, rstd })
    }
}

/// The residual add r = x + h of [`add_layer_norm`], whose forward the fused
/// kernel computes.
struct ResidualAdd;

impl Op<2> for ResidualAdd {
    const NAME: &'static str = "residual_add";
    type Saved = ();

    fn forward(&self, [x, h]: [&Tensor; 2], _: [bool; 2]) -> Result<(Tensor, ())> {
        Ok((x.add(h)?, ()))
    }

    fn backward(self, _: (), grad: &Tensor, needs: [bool; 2]) -> Result<[Option<Tensor>; 2]> {
        Ok(needs.map(|n| n.then(|| grad.clone())))
    }
}

/// LayerNorm of `x` [..., D] over its last dimension with `gamma`, `beta` [D].
pub fn layer_norm(x: &Var, gamma: &Var, beta: &Var, eps: f32) -> Result<Var> {
    LayerNorm { eps }.apply([x, gamma, beta])
}

/// The residual stream's update and the next sublayer's normalised input:
/// returns (r, y) with r = x + h and y = LayerNorm(r), computed in one pass.
pub fn add_layer_norm(x: &Var, h: &Var, gamma: &Var, beta: &Var, eps: f32) -> Result<(Var, Var)> {
    let (r, out) = add_layer_norm_forward(x.tensor(), h.tensor(), gamma.tensor(), beta.tensor(), eps)?;
    let (y, saved) = LayerNorm::saving(&r, gamma.tensor(), out);
    let r = ResidualAdd.record([x, h], r, ())?;
    let y = LayerNorm { eps }.record([&r, gamma, beta], y, saved)?;
    Ok((r, y))
}
