//! Training: learning-rate schedules, RECLIP's phases, the training loop
//! with evaluation, checkpoints and exact resume, and the report of what the
//! run cost. The optimizer, AdamW, is reclip-optim's, re-exported here.

pub mod accumulate;
mod baseline;
pub mod eval;
pub mod graph_step;
pub mod metrics;
mod options;
pub mod parallel;
pub mod phases;
pub mod plot;
pub mod report;
pub mod schedule;
pub mod state;
pub mod step;
pub mod trainer;

pub use graph_step::{CudaGraphs, GraphStep};
pub use parallel::DataParallel;
pub use reclip_optim::{AdamW, AdamWConfig, StepReport, StepScalars};
pub use step::train_step;
