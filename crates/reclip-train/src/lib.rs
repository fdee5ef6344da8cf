//! Training machinery: the AdamW optimizer with gradient clipping (one fused
//! kernel over all parameters on a GPU) and learning-rate schedules.

pub mod optim;
pub mod schedule;

pub use optim::{AdamW, AdamWConfig, StepReport};
