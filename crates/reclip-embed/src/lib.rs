//! reclip's embedding layers, where the image size and the text enter the
//! model. Each differentiable op is one tape node with a fused backward:
//!
//! - [`patch_embed`]: images → class token + patch tokens + positional
//!   embedding, open_clip's ViT stem (`conv1` without bias, stride = patch
//!   size; `class_embedding`; `positional_embedding`);
//! - [`token_embed`]: text token embedding plus positional embedding.
//!
//! [`resize_pos_embed`] resizes a positional embedding to another patch grid
//! as open_clip does (bicubic, antialiased; see [`resize`] for exactly what it
//! computes). The tensor-level forward and backward functions are public too.

mod batch_sum;
mod patch;
pub mod resize;
mod token;

pub use patch::{PatchEmbedGrads, PatchEmbedOutput, PatchGrid, patch_embed, patch_embed_backward, patch_embed_forward};
pub use resize::{resize_pos_embed, resize_pos_embed_grid};
pub use token::{TokenShape, token_embed, token_embed_backward, token_embed_forward};
