//! The GEMMs of the linear layers with what their epilogues fuse in:
//! y = x·Wᵀ + b forward, (dW, db) = (dyᵀ·x, Σ_rows dy) backward, and for the
//! MLP's hidden layer (h, u) = (act(u), u) with u = x·Wᵀ + b forward and
//! du = (dy·W_next)·act'(u) backward. On a GPU device the bias is the
//! forward GEMM's epilogue and its gradient the weight gradient's (cuBLASLt's
//! BIAS and BGRADB on CUDA, the same in the emulator's GEMM); GELU's tanh
//! approximation, the one activation cuBLASLt has, is fused too (GELU_AUX_BIAS
//! forward; DGELU_BGRAD backward, which also sums db), the others run as a
//! kernel after the GEMM. On the CPU the GEMM, then the reference epilogue of
//! `cpu.rs`, rounding a bf16 result once as the fused GEMM does.

use crate::epilogue::act_code;
use crate::{Activation, OP, cpu, gpu};
use reclip_core::ops::{check_same, check_shape};
use reclip_core::{DeviceOp, Error, GpuDevice, Real, Result, Tensor};

/// The forward on one device.
struct Forward<'a> {
    x: &'a Tensor,
    w: &'a Tensor,
    bias: &'a Tensor,
}

impl DeviceOp for Forward<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        // The product stays in T (f32 for bf16) until the bias is added, so
        // that a bf16 result is rounded once, as the GEMM's epilogue does.
        let (x, w) = (self.x.to_dtype(T::DTYPE)?, self.w.to_dtype(T::DTYPE)?);
        let mut y = x.matmul(&w.transpose(0, 1)?)?;
        cpu::add_bias::<T>(y.cpu_data_mut::<T>()?, &self.bias.cpu_real::<T>(OP)?);
        y.to_dtype(self.x.dtype())
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        gpu::linear_bias_forward(self.x, self.w, self.bias)
    }
}

/// y = x·Wᵀ + bias for `x` [rows, in] and `w` [out, in] (checked against
/// each other by the caller), `bias` [out].
pub fn linear_bias_forward(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    check_same(OP, &[x, w, bias])?;
    let (rows, out) = (x.dims()[0], w.dims()[0]);
    if bias.dims() != [out] {
        return Err(Error::invalid(OP, format!("bias {} does not fit the output [{rows}, {out}]", bias.shape())));
    }
    Forward { x, w, bias }.run(x)
}

/// The weight and bias gradients on one device.
struct WeightBiasGrad<'a> {
    dy: &'a Tensor,
    x: &'a Tensor,
}

impl DeviceOp for WeightBiasGrad<'_> {
    type Output = (Tensor, Tensor);
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<(Tensor, Tensor)> {
        let dw = self.dy.transpose(0, 1)?.matmul(self.x)?;
        let cols = self.dy.dims()[1];
        let db = cpu::bias_grad::<T>(&self.dy.cpu_real::<T>(OP)?, cols);
        Ok((dw, Tensor::from_real(db, [cols], self.dy.dtype())))
    }

    fn gpu(self, device: &GpuDevice) -> Result<(Tensor, Tensor)> {
        gpu::weight_bias_grad(device, self.dy, self.x)
    }
}

/// (dW, db) = (dyᵀ·x, Σ_rows dy) for the output gradient `dy` [rows, out]
/// and the input `x` [rows, in].
pub fn weight_bias_grad(dy: &Tensor, x: &Tensor) -> Result<(Tensor, Tensor)> {
    check_same(OP, &[dy, x])?;
    let (&[rows, _], &[_, inp]) = (dy.dims(), x.dims()) else {
        return Err(Error::invalid(
            OP,
            format!("expected dy [rows, out] and x [rows, in], got {} and {}", dy.shape(), x.shape()),
        ));
    };
    check_shape(OP, x, &[rows, inp])?;
    WeightBiasGrad { dy, x }.run(dy)
}

/// Whether a GPU runs an MLP's activation in its GEMMs: GELU's tanh
/// approximation (cuBLASLt's only GELU) at a hidden width cuBLASLt takes as
/// the saved pre-activation's ld (a multiple of 8).
pub fn activation_in_gemm(act: Activation, hidden: usize) -> bool {
    act == Activation::GeluTanh && hidden.is_multiple_of(8)
}

/// [`activation_in_gemm`] for one product, which must not be empty (an
/// epilogue has nothing to ride on otherwise).
fn fuses_activation(act: Activation, rows: usize, hidden: usize, k: usize) -> bool {
    activation_in_gemm(act, hidden) && rows * hidden * k > 0
}

/// The hidden layer's forward on one device: (h, u).
struct HiddenForward<'a> {
    x: &'a Tensor,
    w: &'a Tensor,
    bias: &'a Tensor,
    act: Activation,
}

impl DeviceOp for HiddenForward<'_> {
    type Output = (Tensor, Tensor);
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<(Tensor, Tensor)> {
        // Rounded where a GPU rounds: a fused GEMM applies the activation to
        // u before u is stored (as bf16), the kernel after.
        let (x, w) = (self.x.to_dtype(T::DTYPE)?, self.w.to_dtype(T::DTYPE)?);
        let mut unrounded = x.matmul(&w.transpose(0, 1)?)?;
        cpu::add_bias::<T>(unrounded.cpu_data_mut::<T>()?, &self.bias.cpu_real::<T>(OP)?);
        let (shape, dtype) = (unrounded.shape().clone(), self.x.dtype());
        let u = unrounded.to_dtype(dtype)?;
        let pre_activation = if fuses_activation(self.act, self.x.dims()[0], self.w.dims()[0], self.x.dims()[1]) {
            &unrounded
        } else {
            &u
        };
        let h = cpu::act_forward::<T>(&pre_activation.cpu_real::<T>(OP)?, self.act);
        Ok((Tensor::from_real(h, shape, dtype), u))
    }

    fn gpu(self, device: &GpuDevice) -> Result<(Tensor, Tensor)> {
        let (rows, inp, hidden) = (self.x.dims()[0], self.x.dims()[1], self.w.dims()[0]);
        if fuses_activation(self.act, rows, hidden, inp) {
            return gpu::linear_gelu_tanh_forward(self.x, self.w, self.bias);
        }
        let u = gpu::linear_bias_forward(self.x, self.w, self.bias)?;
        Ok((gpu::act_forward(device, &u, act_code(self.act))?, u))
    }
}

/// The MLP's hidden layer: (h, u) = (act(u), u) for u = x·Wᵀ + bias, `x`
/// [rows, in], `w` [hidden, in], `bias` [hidden]; u is what the backward
/// needs.
pub fn hidden_forward(x: &Tensor, w: &Tensor, bias: &Tensor, act: Activation) -> Result<(Tensor, Tensor)> {
    check_same(OP, &[x, w, bias])?;
    let (rows, hidden) = (x.dims()[0], w.dims()[0]);
    if bias.dims() != [hidden] {
        return Err(Error::invalid(OP, format!("bias {} does not fit the output [{rows}, {hidden}]", bias.shape())));
    }
    HiddenForward { x, w, bias, act }.run(x)
}

/// The hidden layer's gradient on one device: du, and db where the GEMM
/// summed it.
struct HiddenGrad<'a> {
    dy: &'a Tensor,
    w: &'a Tensor,
    u: &'a Tensor,
    act: Activation,
}

impl DeviceOp for HiddenGrad<'_> {
    type Output = (Tensor, Option<Tensor>);
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<(Tensor, Option<Tensor>)> {
        // Rounded where a GPU rounds: a fused GEMM applies act' to the
        // product and sums db before du is stored, the kernel takes the
        // stored product and leaves db to the weight gradient's GEMM, which
        // sums the stored du.
        let dtype = self.u.dtype();
        let dh = self.dy.to_dtype(T::DTYPE)?.matmul(&self.w.to_dtype(T::DTYPE)?)?;
        let u = self.u.cpu_real::<T>(OP)?;
        let (rows, out, hidden) = (self.dy.dims()[0], self.dy.dims()[1], self.w.dims()[1]);
        if fuses_activation(self.act, rows, hidden, out) {
            let du = cpu::act_backward::<T>(&dh.cpu_real::<T>(OP)?, &u, self.act);
            let db = Tensor::from_real(cpu::bias_grad::<T>(&du, hidden), [hidden], dtype);
            return Ok((Tensor::from_real(du, self.u.shape().clone(), dtype), Some(db)));
        }
        let dh = dh.to_dtype(dtype)?;
        let du = cpu::act_backward::<T>(&dh.cpu_real::<T>(OP)?, &u, self.act);
        Ok((Tensor::from_real(du, self.u.shape().clone(), dtype), None))
    }

    fn gpu(self, device: &GpuDevice) -> Result<(Tensor, Option<Tensor>)> {
        let (rows, out, hidden) = (self.dy.dims()[0], self.dy.dims()[1], self.w.dims()[1]);
        if fuses_activation(self.act, rows, hidden, out) {
            let (du, db) = gpu::gelu_tanh_hidden_grad(self.dy, self.w, self.u)?;
            return Ok((du, Some(db)));
        }
        let dh = self.dy.matmul(self.w)?;
        Ok((gpu::act_backward(device, &dh, self.u, act_code(self.act))?, None))
    }
}

/// The gradient du of the hidden layer's pre-activation u [rows, hidden],
/// from the gradient `dy` [rows, out] of the next layer's output and that
/// layer's weight `w` [out, hidden]: du = (dy·W)·act'(u). With it the hidden
/// bias's gradient Σ_rows du when the GEMM's epilogue summed it (GELU's tanh
/// approximation on a GPU), `None` when the caller sums it.
pub fn hidden_grad(dy: &Tensor, w: &Tensor, u: &Tensor, act: Activation) -> Result<(Tensor, Option<Tensor>)> {
    check_same(OP, &[dy, w, u])?;
    let (&[rows, out], &[w_out, hidden]) = (dy.dims(), w.dims()) else {
        return Err(Error::invalid(
            OP,
            format!("expected dy [rows, out] and w [out, hidden], got {} and {}", dy.shape(), w.shape()),
        ));
    };
    if w_out != out {
        return Err(Error::invalid(OP, format!("weight {} does not fit the gradient {}", w.shape(), dy.shape())));
    }
    check_shape(OP, u, &[rows, hidden])?;
    HiddenGrad { dy, w, u, act }.run(dy)
}
