//! The GEMMs of a linear layer without activation, with its bias fused in:
//! y = x·Wᵀ + b forward, (dW, db) = (dyᵀ·x, Σ_rows dy) backward. On a GPU
//! device each is one GEMM whose epilogue adds the bias or sums its gradient
//! (cuBLASLt's BIAS and BGRADB on CUDA, the same in the emulator's GEMM); on
//! the CPU the GEMM, then the reference epilogue of `cpu.rs`, rounding a
//! bf16 result once as the fused GEMM does.

use crate::{OP, cpu, gpu};
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
        let z = x.matmul(&w.transpose(0, 1)?)?;
        let y = cpu::bias_act_forward::<T>(&z.cpu_real::<T>(OP)?, &self.bias.cpu_real::<T>(OP)?, None);
        Ok(Tensor::from_real(y, z.shape().clone(), self.x.dtype()))
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
