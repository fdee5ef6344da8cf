use crate::{DType, Shape};

/// Everything that can go wrong in a tensor operation. Each variant names the
/// operation so that a message read in a training log points at its source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: shapes {lhs} and {rhs} are incompatible")]
    ShapeMismatch { op: &'static str, lhs: Shape, rhs: Shape },
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    #[error("{op}: dtype {got} is not supported here (expected {expected})")]
    DType { op: &'static str, got: DType, expected: &'static str },
    #[error("{op}: dtypes {lhs} and {rhs} differ")]
    DTypeMismatch { op: &'static str, lhs: DType, rhs: DType },
    #[error("{op}: tensors live on different devices ({lhs} and {rhs})")]
    DeviceMismatch { op: &'static str, lhs: String, rhs: String },
    #[error("{op} has no implementation on device {device}")]
    NotOnDevice { op: &'static str, device: String },
    #[error("index {index} out of range for dimension of size {size} in {op}")]
    IndexOutOfRange { op: &'static str, index: usize, size: usize },
    #[error("device error: {0}")]
    Device(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument { op, msg: msg.into() }
    }
}
