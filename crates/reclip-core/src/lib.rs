//! reclip's core: n-dimensional tensors with f32, bf16 (and, on the CPU, f64)
//! elements, storage owned by a [`Device`], and the CPU implementations of the
//! basic ops. Layer crates build on these; the autograd crate records them.

pub mod cpu;
mod device;
mod device_op;
mod dtype;
mod error;
pub mod fs;
pub mod gpu;
mod indices;
mod layout;
pub mod ops;
mod storage;
mod tensor;

pub use device::{
    Device, DeviceGraph, GemmCall, GemmEpilogue, GemmOperand, GpuDevice, KernelArg, KernelBackend, KernelLayout,
    Launch, unreplayable,
};
pub use device_op::DeviceOp;
pub use dtype::{DType, Element, Real};
pub use error::{Error, Result};
pub use half::bf16;
pub use indices::Indices;
pub use layout::{Layout, Shape};
pub use storage::{CpuStorage, GpuBuffer, Storage};
pub use tensor::Tensor;

/// The random generator used everywhere in reclip: seeded, and stable across
/// platforms and releases, so runs reproduce.
pub type Rng = rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> Rng {
    use rand::SeedableRng;
    Rng::seed_from_u64(seed)
}
