//! Differentiable versions of the core tensor ops, as methods on [`crate::Var`].
//! Each is an [`crate::Op`] (concat, of any number of inputs, a typed
//! [`crate::Backward`]) recording one tape node whose backward is written with
//! core ops, so it runs on whatever device the values live on.

mod arith;
mod index;
mod matmul;
mod reduce;
mod shape;
