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

mod cpu;
mod gpu;
mod patch;
mod reduce;
pub mod resize;
mod token;

pub use patch::{PatchEmbedGrads, PatchEmbedOutput, PatchGrid, patch_embed_backward, patch_embed_forward};
pub use resize::{resize_pos_embed, resize_pos_embed_grid};
pub use token::{TokenShape, token_embed_backward, token_embed_forward};

use reclip_autograd::Var;
use reclip_core::{Indices, Result, Tensor};

/// Patch tokens of `images` [B, C, H, W] (H and W divisible by `patch_size`)
/// with `conv_weight` [D, C, P, P] (open_clip's `conv1.weight`), the class
/// token `class_embedding` [D] first, and `positional_embedding`
/// [1 + gh·gw, D] added: [B, 1 + gh·gw, D], patches in row-major order.
pub fn patch_embed(
    images: &Var,
    conv_weight: &Var,
    class_embedding: &Var,
    positional_embedding: &Var,
    patch_size: usize,
) -> Result<Var> {
    let out = patch_embed_forward(
        images.tensor(),
        conv_weight.tensor(),
        class_embedding.tensor(),
        positional_embedding.tensor(),
        patch_size,
    )?;
    let grid = out.grid;
    let columns = conv_weight.is_tracked().then_some(out.columns);
    let weight = images.is_tracked().then(|| conv_weight.tensor().clone());
    Var::from_op(
        "patch_embed",
        &[images, conv_weight, class_embedding, positional_embedding],
        out.tokens,
        move |g: &Tensor, needs: &[bool]| {
            let grads = patch_embed_backward(
                g,
                &grid,
                columns.as_ref(),
                weight.as_ref(),
                [needs[0], needs[1], needs[2], needs[3]],
            )?;
            Ok(vec![grads.images, grads.conv_weight, grads.class_embedding, grads.positional_embedding])
        },
    )
}

/// Embeddings of `ids` [B, L] (checked for the table's vocabulary and
/// device) from `table` [V, D], plus the first L rows of
/// `positional_embedding` [ctx, D]: [B, L, D]. The backward sums each token's
/// gradients in position order, through the grouping the ids carry, so the
/// table's gradient is deterministic and nothing is transferred.
pub fn token_embed(ids: &Indices, table: &Var, positional_embedding: &Var) -> Result<Var> {
    let shape = TokenShape::new(ids, table.tensor(), positional_embedding.tensor())?;
    let out = token_embed_forward(ids, table.tensor(), positional_embedding.tensor())?;
    let ids = ids.clone();
    Var::from_op("token_embed", &[table, positional_embedding], out, move |g: &Tensor, needs: &[bool]| {
        Ok(token_embed_backward(g, &ids, &shape, [needs[0], needs[1]])?.into())
    })
}
