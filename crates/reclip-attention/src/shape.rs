//! The shapes attention works on, read from (and checked against) its tensors.

use reclip_core::{DType, Error, Result, Shape, Tensor};

/// Self-attention over `batch` sequences of `len` tokens, `heads` heads of
/// `head_width` channels each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub len: usize,
    pub heads: usize,
    pub head_width: usize,
}

impl AttentionShape {
    /// Reads the shape of a packed in-projection output `[batch, len, 3·width]`.
    pub fn of_qkv(op: &'static str, qkv: &Tensor, heads: usize) -> Result<Self> {
        let dims = qkv.dims();
        if dims.len() != 3 || !dims[2].is_multiple_of(3) {
            return Err(Error::invalid(
                op,
                format!("qkv must be [batch, tokens, 3·width] (q | k | v packed), got shape {}", qkv.shape()),
            ));
        }
        let width = dims[2] / 3;
        if heads == 0 || !width.is_multiple_of(heads) || width == 0 {
            return Err(Error::invalid(
                op,
                format!("{heads} heads do not divide the width {width} of qkv with shape {}", qkv.shape()),
            ));
        }
        if !qkv.dtype().is_float() {
            return Err(Error::DType { op, got: qkv.dtype(), expected: "f32, bf16 or (on the CPU) f64" });
        }
        Ok(AttentionShape { batch: dims[0], len: dims[1], heads, head_width: width / heads })
    }

    pub fn width(&self) -> usize {
        self.heads * self.head_width
    }

    /// Number of (batch, head) pairs.
    pub fn pairs(&self) -> usize {
        self.batch * self.heads
    }

    /// `[batch, len, width]`: the attention output and its gradient.
    pub fn out_dims(&self) -> [usize; 3] {
        [self.batch, self.len, self.width()]
    }

    /// `[batch, heads, len]`: the per-row logsumexp.
    pub fn lse_dims(&self) -> [usize; 3] {
        [self.batch, self.heads, self.len]
    }

    /// The dtype of the saved logsumexp for inputs of `dtype`: f32, or f64
    /// for f64 inputs (the gradient check).
    pub fn lse_dtype(dtype: DType) -> DType {
        if dtype == DType::F64 { DType::F64 } else { DType::F32 }
    }

    /// Checks that `t` has `dims`, the dtype `dtype` and the device of `like`.
    pub fn check(op: &'static str, what: &str, t: &Tensor, dims: &[usize], dtype: DType, like: &Tensor) -> Result<()> {
        if t.dims() != dims {
            return Err(Error::invalid(op, format!("{what} must have shape {}, got {}", Shape::new(dims), t.shape())));
        }
        if t.dtype() != dtype {
            return Err(Error::invalid(op, format!("{what} must be {dtype}, got {}", t.dtype())));
        }
        if !t.device().same(like.device()) {
            return Err(Error::DeviceMismatch { op, lhs: like.device().name(), rhs: t.device().name() });
        }
        Ok(())
    }
}
