//! Every kernel test of the workspace in one binary, for a GPU machine:
//! `tools/gpu-check.sh` carries this one executable instead of one per crate
//! (each statically links every kernel and the whole dependency tree).
//! The modules are the crates' own `tests/kernels*.rs` files, unchanged; on
//! the emulator `cargo test --workspace` runs them there, so this target is
//! built only when asked for (`test = false` in Cargo.toml):
//!
//! ```sh
//! cargo test --release --features cuda --test gpu_kernels
//! ```
//!
//! Test names start with their family (`norm::…`, `attention::…`, `loss::…`), so a
//! stage can pick a family by filter, as the sanitizer runs do.

#[path = "../crates/reclip-testkit/tests/kernels_demo.rs"]
mod demo;

#[path = "../crates/reclip-testkit/tests/kernels_core.rs"]
mod core_ops;

#[path = "../crates/reclip-embed/tests/kernels.rs"]
mod embed;

#[path = "../crates/reclip-norm/tests/kernels.rs"]
mod norm;

#[path = "../crates/reclip-mlp/tests/kernels.rs"]
mod mlp;

#[path = "../crates/reclip-attention/tests/kernels.rs"]
mod attention;

#[path = "../crates/reclip-loss/tests/kernels.rs"]
mod loss;

#[path = "../crates/reclip-optim/tests/kernels.rs"]
mod optim;

#[path = "kernels_train.rs"]
mod train;
