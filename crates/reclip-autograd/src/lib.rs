//! reclip's minimal reverse-mode autograd: a [`Tape`] of op nodes, [`Var`]s
//! that may be tracked on it, trainable [`Param`]s, and a finite-difference
//! gradient check ([`gradcheck`]) that every op's tests use.
//!
//! Every op is an [`Op`]: a forward on tensors that returns the output and a
//! typed saved state, and a typed backward from that state to one optional
//! gradient per input. [`Op::apply`] records it on the tape of whichever
//! input is tracked, through [`Var::from_op`], which hands the tape a
//! [`Backward`] owning exactly what the backward pass needs. The core ops'
//! differentiable versions (methods on [`Var`]) and the fused layer ops of
//! the layer crates, single nodes with hand-written backward kernels, are all
//! recorded this way.

pub mod gradcheck;
mod op;
mod ops;
mod param;
mod tape;

pub use op::Op;
pub use param::{FollowsParams, Param};
pub use tape::{Backward, Gradients, Tape, Var};
