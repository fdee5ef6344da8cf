//! What a linear layer does after its GEMM, on tensors: the fused bias +
//! activation epilogue, forward and backward (the backward also sums the bias
//! gradient), and the bias gradient alone, for a layer without activation
//! whose weight takes no gradient (otherwise the weight gradient's GEMM sums
//! it, see `fused.rs`).

use crate::{Activation, OP, cpu, gpu};
use reclip_core::ops::{check_same, check_shape};
use reclip_core::{DeviceOp, Error, GpuDevice, Real, Result, Tensor};

/// The kernels' code for an epilogue's activation (0 = identity).
fn act_code(act: Option<Activation>) -> i32 {
    match act {
        None => 0,
        Some(Activation::Gelu) => 1,
        Some(Activation::QuickGelu) => 2,
    }
}

/// Rows and columns of `z` [..., cols], checked against `bias` [cols].
fn epilogue_shape(z: &Tensor, bias: &Tensor) -> Result<(usize, usize)> {
    check_same(OP, &[z, bias])?;
    if !z.dtype().is_float() {
        return Err(Error::DType { op: OP, got: z.dtype(), expected: "f32, bf16 or f64" });
    }
    match z.dims().split_last() {
        Some((&cols, lead)) if bias.dims() == [cols] => Ok((lead.iter().product(), cols)),
        _ => Err(Error::invalid(OP, format!("bias {} does not fit the output {}", bias.shape(), z.shape()))),
    }
}

/// The forward epilogue on one device.
struct BiasAct<'a> {
    z: &'a Tensor,
    bias: &'a Tensor,
    act: Option<Activation>,
    rows: usize,
    cols: usize,
}

impl DeviceOp for BiasAct<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let y = cpu::bias_act_forward::<T>(&self.z.cpu_real::<T>(OP)?, &self.bias.cpu_real::<T>(OP)?, self.act);
        Ok(Tensor::from_real(y, self.z.shape().clone(), self.z.dtype()))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::bias_act_forward(device, self.z, self.bias, act_code(self.act), self.rows, self.cols)
    }
}

/// act(z + bias) with `bias` [cols] broadcast over the rows of `z` [..., cols];
/// `None` is the identity.
pub fn bias_act_forward(z: &Tensor, bias: &Tensor, act: Option<Activation>) -> Result<Tensor> {
    let (rows, cols) = epilogue_shape(z, bias)?;
    BiasAct { z, bias, act, rows, cols }.run(z)
}

/// The backward epilogue on one device: (du, db).
struct BiasActBackward<'a> {
    dy: &'a Tensor,
    z: &'a Tensor,
    bias: &'a Tensor,
    act: Activation,
    rows: usize,
    cols: usize,
}

impl DeviceOp for BiasActBackward<'_> {
    type Output = (Tensor, Tensor);
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<(Tensor, Tensor)> {
        let (du, db) = cpu::bias_act_backward::<T>(
            &self.dy.cpu_real::<T>(OP)?,
            &self.z.cpu_real::<T>(OP)?,
            &self.bias.cpu_real::<T>(OP)?,
            self.act,
        );
        let dtype = self.z.dtype();
        Ok((Tensor::from_real(du, self.z.shape().clone(), dtype), Tensor::from_real(db, [self.cols], dtype)))
    }

    fn gpu(self, device: &GpuDevice) -> Result<(Tensor, Tensor)> {
        let derivative = Some((self.z, self.bias, act_code(Some(self.act))));
        let (du, db) = gpu::column_sums(device, self.dy, derivative, self.rows, self.cols)?;
        Ok((du.expect("the epilogue's backward returns du"), db))
    }
}

/// The backward of [`bias_act_forward`] with an activation: du = dy·act'(z + bias)
/// (the gradient of z) and db = Σ_rows du.
pub fn bias_act_backward(dy: &Tensor, z: &Tensor, bias: &Tensor, act: Activation) -> Result<(Tensor, Tensor)> {
    let (rows, cols) = epilogue_shape(z, bias)?;
    check_same(OP, &[z, dy])?;
    check_shape(OP, dy, z.dims())?;
    BiasActBackward { dy, z, bias, act, rows, cols }.run(z)
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
        Ok(gpu::column_sums(device, self.dy, None, self.rows, self.cols)?.1)
    }
}

/// The bias gradient of a linear layer without activation: `dy` [..., cols]
/// summed over everything but its last dimension.
pub fn bias_grad(dy: &Tensor) -> Result<Tensor> {
    if !dy.dtype().is_float() {
        return Err(Error::DType { op: OP, got: dy.dtype(), expected: "f32, bf16 or f64" });
    }
    let Some((&cols, lead)) = dy.dims().split_last() else {
        return Err(Error::invalid(OP, "the gradient of a bias needs at least one dimension"));
    };
    BiasGrad { dy, rows: lead.iter().product(), cols }.run(dy)
}
