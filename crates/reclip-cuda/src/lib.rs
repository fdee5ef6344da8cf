//! reclip's CUDA runtime.
//!
//! With the `cuda` feature, every kernel of `kernels/` is compiled by nvcc at
//! build time and embedded in the binary; [`CudaBackend`] loads them through
//! cudarc (which loads the driver dynamically, so one binary runs on machines
//! without a GPU too), runs the [`reclip_core::Launch`] descriptions the ops
//! build, allocates from the driver's stream-ordered memory pool and runs GEMM
//! through cuBLAS. Without the feature, asking for a CUDA device is an error
//! that says so.

#[cfg(feature = "cuda")]
mod backend;
pub mod ptxas;
mod select;

#[cfg(feature = "cuda")]
pub use backend::CudaBackend;
pub use select::{DeviceChoice, cuda_device, select_device};

/// The fatbins (one per kernel file) and the ptxas report of the build.
#[cfg(feature = "cuda")]
pub mod kernels {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}
