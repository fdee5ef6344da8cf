//! reclip: RECLIP (resource-efficient CLIP) training in Rust.
//!
//! This crate re-exports the workspace's crates under one name.

pub use reclip_attention as attention;
pub use reclip_autograd as autograd;
pub use reclip_core as core;
pub use reclip_cuda as cuda;
pub use reclip_data as data;
pub use reclip_dist as dist;
pub use reclip_embed as embed;
pub use reclip_loss as loss;
pub use reclip_mlp as mlp;
pub use reclip_model as model;
pub use reclip_norm as norm;
pub use reclip_optim as optim;
pub use reclip_tokenizer as tokenizer;
pub use reclip_train as train;

pub mod allocator;
