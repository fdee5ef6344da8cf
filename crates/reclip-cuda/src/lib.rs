//! reclip's CUDA runtime.
//!
//! With the `cuda` feature, every kernel of `kernels/` is compiled by nvcc at
//! build time and embedded in the binary; [`CudaBackend`] loads them through
//! cudarc (which loads the driver dynamically, so one binary runs on machines
//! without a GPU too), runs the [`reclip_core::Launch`] descriptions the ops
//! build, allocates from the driver's stream-ordered memory pool, runs GEMM
//! through cuBLAS and cuBLASLt, and records its stream as CUDA graphs. Without the feature, asking for a CUDA device is an error
//! that says so.

#[cfg(feature = "cuda")]
mod backend;
#[cfg(feature = "cuda")]
mod graph;
pub mod ptxas;
mod select;

#[cfg(feature = "cuda")]
pub use backend::{CudaBackend, CudaOptions, SYNC_VAR, cuda_backend, driver_version};
pub use select::{DeviceChoice, Selection, cuda_device, driver_installed, select_device};

/// The fatbins (one per kernel file) and the ptxas report of the build.
#[cfg(feature = "cuda")]
pub mod kernels {
    /// An embedded fatbin. The driver reads its header as 8-byte words, and
    /// `include_bytes!` alone promises no alignment.
    #[repr(C, align(8))]
    pub struct Fatbin<T: ?Sized>(pub T);

    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}
