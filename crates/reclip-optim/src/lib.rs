//! reclip's optimizer: AdamW with clipping of the global gradient norm, its
//! CPU reference beside the launches of its fused kernel (kernels/adamw.cu).

mod adamw;

pub use adamw::{AdamW, AdamWConfig, StepReport, StepScalars, decays};
