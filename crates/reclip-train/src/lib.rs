//! Training: the AdamW optimizer with gradient clipping (one fused kernel
//! over all parameters on a GPU), learning-rate schedules, RECLIP's phases,
//! the training loop with evaluation, checkpoints and exact resume, and the
//! report of what the run cost.

pub mod encoder;
pub mod eval;
pub mod metrics;
pub mod optim;
pub mod phases;
pub mod plot;
pub mod report;
pub mod schedule;
pub mod state;
pub mod step;
pub mod trainer;

pub use optim::{AdamW, AdamWConfig, StepReport};
pub use step::train_step;
