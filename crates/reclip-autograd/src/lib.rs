//! reclip's minimal reverse-mode autograd: a [`Tape`] of op nodes, [`Var`]s
//! that may be tracked on it, trainable [`Param`]s, and a finite-difference
//! gradient check ([`gradcheck`]) that every op's tests use.
//!
//! An op is recorded with [`Var::from_op`]: it computes its output, then hands
//! the tape a [`Backward`] that owns exactly the tensors the backward pass
//! needs. Fused layer ops of the layer crates are recorded the same way, as
//! single nodes with hand-written backward kernels.

pub mod gradcheck;
mod op;
mod ops;
mod param;
mod tape;

pub use op::Op;
pub use param::{FollowsParams, Param};
pub use tape::{Backward, Gradients, Tape, Var};
