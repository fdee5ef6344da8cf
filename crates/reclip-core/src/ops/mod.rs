//! Tensor operations. Each checks its arguments, then runs as a
//! [`crate::DeviceOp`]: the CPU path calls `crate::cpu`, the GPU path builds
//! kernel launches in `crate::gpu`.

mod elementwise;
mod index;
pub mod matmul;
mod reduce;
mod view;

pub use crate::cpu::elementwise::{BinaryOp, UnaryOp};

use crate::{Error, Result, Tensor};

/// Runs `$body` with `$T` bound to the compute type of a float dtype: f32 for
/// f32 and bf16 tensors, f64 for f64 tensors.
#[macro_export]
macro_rules! with_real {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 | $crate::DType::BF16 => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
            other => Err($crate::Error::DType { op: $op, got: other, expected: "a float dtype" }),
        }
    };
}

/// Checks that all tensors share the first one's device and dtype.
pub fn check_same(op: &'static str, tensors: &[&Tensor]) -> Result<()> {
    let first = tensors[0];
    for t in &tensors[1..] {
        if !t.device().same(first.device()) {
            return Err(Error::DeviceMismatch { op, lhs: first.device().name(), rhs: t.device().name() });
        }
        if t.dtype() != first.dtype() {
            return Err(Error::DTypeMismatch { op, lhs: first.dtype(), rhs: t.dtype() });
        }
    }
    Ok(())
}

/// Checks that `t` has exactly the shape `dims`.
pub fn check_shape(op: &'static str, t: &Tensor, dims: &[usize]) -> Result<()> {
    if t.dims() != dims {
        return Err(Error::ShapeMismatch { op, lhs: t.shape().clone(), rhs: crate::Shape::new(dims) });
    }
    Ok(())
}
