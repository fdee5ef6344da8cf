use half::bf16;
use std::fmt;

/// Element types. Activations and weights are `F32` or `BF16` on every device;
/// `F64` exists on the CPU only, for gradient checks; `U32` holds indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    BF16,
    F64,
    U32,
}

impl DType {
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::BF16 => 2,
            DType::F64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        !matches!(self, DType::U32)
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
            DType::U32 => "u32",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can be stored in a tensor.
pub trait Element: bytemuck::Pod + Send + Sync + Copy + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        // Through f32 so that rounding matches the GPU's f32 -> bf16 conversion.
        bf16::from_f32(v as f32)
    }
}

impl Element for u32 {
    const DTYPE: DType = DType::U32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as u32
    }
}

/// Floating-point types the CPU computes in: bf16 data is widened to f32.
pub trait Real:
    num_traits::Float
    + num_traits::FloatConst
    + Element
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::MulAssign
    + Default
{
    fn from_f32(v: f32) -> Self;
}

impl Real for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Real for f64 {
    fn from_f32(v: f32) -> Self {
        v as f64
    }
}
