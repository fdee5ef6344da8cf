//! Validation of the loss's inputs: every bad shape, dtype or device is an
//! error naming the op and the tensor.

use crate::primitives::compute_dtype;
use reclip_core::{DType, Error, Result, Shape, Tensor};

/// The (rows, d) of an embedding matrix.
pub fn features(op: &'static str, name: &str, t: &Tensor) -> Result<(usize, usize)> {
    if t.rank() != 2 {
        return Err(Error::invalid(op, format!("{name} must be a [rows, d] matrix, got shape {}", t.shape())));
    }
    if !t.dtype().is_float() {
        return Err(Error::invalid(op, format!("{name} has dtype {}, expected f32, bf16 or f64", t.dtype())));
    }
    let (rows, d) = (t.dims()[0], t.dims()[1]);
    if rows == 0 || d == 0 {
        return Err(Error::invalid(op, format!("{name} of shape {} is empty", t.shape())));
    }
    Ok((rows, d))
}

/// All embedding matrices share the first one's device and dtype.
pub fn same_kind(op: &'static str, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let (first_name, first) = tensors[0];
    for (name, t) in &tensors[1..] {
        if !t.device().same(first.device()) {
            return Err(Error::invalid(
                op,
                format!("{first_name} is on {} but {name} is on {}", first.device(), t.device()),
            ));
        }
        if t.dtype() != first.dtype() {
            return Err(Error::invalid(op, format!("{first_name} is {} but {name} is {}", first.dtype(), t.dtype())));
        }
    }
    Ok(())
}

/// A learnable scalar of the loss (the log-temperature t, SigLIP's bias) as
/// the kernels take it (shape [1], the compute dtype of `features`), and
/// what its gradient must look like.
pub struct LogScale {
    pub value: Tensor,
    dtype: DType,
    shape: Shape,
}

impl LogScale {
    pub fn new(op: &'static str, t: &Tensor, features: &Tensor) -> Result<Self> {
        Self::named(op, "log_scale", t, features)
    }

    /// The scalar `name` (in error messages).
    pub fn named(op: &'static str, name: &str, t: &Tensor, features: &Tensor) -> Result<Self> {
        if t.elem_count() != 1 || t.rank() > 1 {
            return Err(Error::invalid(op, format!("{name} must have shape [] or [1], got {}", t.shape())));
        }
        if !t.dtype().is_float() {
            return Err(Error::invalid(op, format!("{name} has dtype {}, expected a float dtype", t.dtype())));
        }
        if !t.device().same(features.device()) {
            return Err(Error::invalid(
                op,
                format!("{name} is on {} but the features are on {}", t.device(), features.device()),
            ));
        }
        let value = t.to_dtype(compute_dtype(features.dtype()))?.reshape([1])?.contiguous()?;
        Ok(LogScale { value, dtype: t.dtype(), shape: t.shape().clone() })
    }

    /// d(loss)/dt ([1], compute dtype) in the scalar's own dtype and shape.
    pub fn grad_like(&self, dt: Tensor) -> Result<Tensor> {
        dt.to_dtype(self.dtype)?.reshape(self.shape.clone())
    }
}

/// The loss's upstream gradient as the kernels take it: shape [1], `dtype`.
pub fn upstream(op: &'static str, grad: &Tensor, dtype: DType) -> Result<Tensor> {
    if grad.elem_count() != 1 {
        return Err(Error::invalid(op, format!("the loss's gradient must be a scalar, got shape {}", grad.shape())));
    }
    grad.to_dtype(dtype)?.reshape([1])?.contiguous()
}
