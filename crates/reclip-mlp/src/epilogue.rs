//! What a linear layer computes after its GEMM that no GEMM epilogue does, on
//! tensors: the activation h = act(u) of the pre-activation u = x·Wᵀ + b and
//! its backward, and the bias gradient alone, for a layer without activation
//! whose weight takes no gradient (otherwise the weight gradient's GEMM sums
//! it, see `fused.rs`).

use crate::{Activation, OP, cpu, gpu};
use reclip_core::ops::{check_same, check_shape};
use reclip_core::{DeviceOp, Error, GpuDevice, Real, Result, Tensor};

/// The kernels' code for an activation (kernels/mlp.cu).
pub(crate) fn act_code(act: Activation) -> i32 {
    match act {
        Activation::Gelu => 1,
        Activation::QuickGelu => 2,
        Activation::GeluTanh => 3,
    }
}

fn check_float(t: &Tensor) -> Result<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::DType { op: OP, got: t.dtype(), expected: "f32, bf16 or f64" })
    }
}

/// The forward on one device.
struct ActForward<'a> {
    u: &'a Tensor,
    act: Activation,
}

impl DeviceOp for ActForward<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let h = cpu::act_forward::<T>(&self.u.cpu_real::<T>(OP)?, self.act);
        Ok(Tensor::from_real(h, self.u.shape().clone(), self.u.dtype()))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::act_forward(device, self.u, act_code(self.act))
    }
}

/// h = act(u), elementwise.
pub fn activation_forward(u: &Tensor, act: Activation) -> Result<Tensor> {
    check_float(u)?;
    ActForward { u, act }.run(u)
}

/// The backward on one device.
struct ActBackward<'a> {
    dh: &'a Tensor,
    u: &'a Tensor,
    act: Activation,
}

impl DeviceOp for ActBackward<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let du = cpu::act_backward::<T>(&self.dh.cpu_real::<T>(OP)?, &self.u.cpu_real::<T>(OP)?, self.act);
        Ok(Tensor::from_real(du, self.u.shape().clone(), self.u.dtype()))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::act_backward(device, self.dh, self.u, act_code(self.act))
    }
}

/// The backward of [`activation_forward`]: du = dh·act'(u).
pub fn activation_backward(dh: &Tensor, u: &Tensor, act: Activation) -> Result<Tensor> {
    check_float(u)?;
    check_same(OP, &[u, dh])?;
    check_shape(OP, dh, u.dims())?;
    ActBackward { dh, u, act }.run(u)
}

/// The bias gradient without activation on one device.
struct BiasGrad<'a> {
    dy: &'a Tensor,
    rows: usize,
    cols: usize,
}

impl DeviceOp for BiasGrad<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let db = cpu::bias_grad::<T>(&self.dy.cpu_real::<T>(OP)?, self.cols);
        Ok(Tensor::from_real(db, [self.cols], self.dy.dtype()))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::column_sums(device, self.dy, self.rows, self.cols)
    }
}

/// The bias gradient of a linear layer without activation: `dy` [..., cols]
/// summed over everything but its last dimension.
pub fn bias_grad(dy: &Tensor) -> Result<Tensor> {
    check_float(dy)?;
    let Some((&cols, lead)) = dy.dims().split_last() else {
        return Err(Error::invalid(OP, "the gradient of a bias needs at least one dimension"));
    };
    BiasGrad { dy, rows: lead.iter().product(), cols }.run(dy)
}
