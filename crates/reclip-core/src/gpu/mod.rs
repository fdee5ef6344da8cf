//! GPU paths of the core ops: each builds the launches of its kernels (in
//! kernels/) for any [`crate::KernelBackend`] — the CUDA runtime or the CPU
//! emulator.

mod copy;
mod elementwise;
mod index;
mod matmul;
mod reduce;

pub use copy::{cast, copy_into, fill, strided_copy};
pub use elementwise::{affine, binary, clamp_in_place, powf, unary};
pub use index::{gather, index_add, index_select, scatter_add};
pub use matmul::{matmul, matmul_epilogue};
pub use reduce::{max, softmax, sum};

use crate::{DType, Error, GpuDevice, KernelArg, Result, Tensor};

/// Threads per block of the 1-D grid-stride kernels.
pub const THREADS: u32 = 256;

/// Whether a kernel's vector form (16-byte loads and stores, the `*_vec_*`
/// entry points) can run over rows of `len` elements at these device
/// addresses: rows of whole 16-byte packs, every address 16-byte aligned (a
/// view may start anywhere in its storage).
pub fn vector_form(dtype: DType, len: usize, ptrs: &[u64]) -> bool {
    len.is_multiple_of(16 / dtype.size_in_bytes()) && ptrs.iter().all(|p| p.is_multiple_of(16))
}

/// Packs each thread of a vector-form map kernel loads before it uses any
/// (`kInFlight` of kernels/elementwise.cu and kernels/mlp.cu).
const PACKS_PER_THREAD: usize = 4;

/// For a map kernel over `n` contiguous elements at `ptrs` (common.cuh's
/// map1/map2): its `scalar` form or its `vector` form, whichever
/// [`vector_form`] allows, and the grid-stride loop's blocks.
pub fn map_form(
    scalar: &'static str,
    vector: &'static str,
    dtype: DType,
    n: usize,
    ptrs: &[u64],
) -> (&'static str, u32) {
    if vector_form(dtype, n, ptrs) {
        let packs = n / (16 / dtype.size_in_bytes());
        (vector, blocks_for(packs.div_ceil(PACKS_PER_THREAD)))
    } else {
        (scalar, blocks_for(n))
    }
}

/// Blocks for a grid-stride loop over `n` elements: enough to fill any GPU,
/// capped because each thread loops.
pub fn blocks_for(n: usize) -> u32 {
    n.div_ceil(THREADS as usize).clamp(1, 65536) as u32
}

/// The GPU device a tensor lives on; an error for a CPU tensor.
pub fn device_of(t: &Tensor) -> Result<&GpuDevice> {
    t.device().gpu().ok_or_else(|| Error::invalid("gpu", "tensor is on the CPU"))
}

/// The kernel named `$base` with the dtype suffix of `$dtype` (`_f32`,
/// `_bf16`), or a dtype error naming `$op`.
#[macro_export]
macro_rules! kernel_name {
    ($base:literal, $dtype:expr, $op:expr) => {
        match $dtype {
            $crate::DType::F32 => Ok(concat!($base, "_f32")),
            $crate::DType::BF16 => Ok(concat!($base, "_bf16")),
            other => Err($crate::Error::DType { op: $op, got: other, expected: "f32 or bf16 on a GPU device" }),
        }
    };
}

/// Converts a size to the 32-bit int a kernel parameter takes.
pub fn int_arg(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid(op, format!("{what} = {v} exceeds the kernels' 32-bit limit")))
}

/// A size as a kernel's 32-bit int argument; `what` names it in the error.
pub fn i32_arg(op: &'static str, what: &str, v: usize) -> Result<KernelArg> {
    Ok(KernelArg::I32(int_arg(op, what, v)?))
}

/// A tensor's device address as a kernel argument.
pub fn ptr(t: &Tensor) -> Result<KernelArg> {
    Ok(KernelArg::Ptr(t.gpu_ptr()?))
}

/// The address of `t`, or null where a kernel takes an optional buffer.
pub fn optional_ptr(t: Option<&Tensor>) -> Result<KernelArg> {
    Ok(KernelArg::Ptr(t.map(Tensor::gpu_ptr).transpose()?.unwrap_or(0)))
}
