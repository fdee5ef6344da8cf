//! The shapes of a patch embedding, checked once against all four inputs.

use reclip_core::ops::check_same;
use reclip_core::{Error, Result, Tensor};

const OP: &str = "patch_embed";

/// The shapes of one patch embedding: `batch` images of `channels`×`height`×`width`
/// cut into `patch`×`patch` patches, each embedded in `dim` dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchGrid {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub patch: usize,
    pub dim: usize,
}

impl PatchGrid {
    /// Checks the four inputs of a patch embedding against each other.
    pub fn new(
        images: &Tensor,
        conv_weight: &Tensor,
        class_embedding: &Tensor,
        positional_embedding: &Tensor,
        patch_size: usize,
    ) -> Result<Self> {
        check_same(OP, &[images, conv_weight, class_embedding, positional_embedding])?;
        if !images.dtype().is_float() {
            return Err(Error::DType { op: OP, got: images.dtype(), expected: "f32, bf16 or f64" });
        }
        let &[batch, channels, height, width] = images.dims() else {
            return Err(Error::invalid(OP, format!("images must be [B, C, H, W], got shape {}", images.shape())));
        };
        if patch_size == 0 {
            return Err(Error::invalid(OP, "the patch size must be positive"));
        }
        if height % patch_size != 0 || width % patch_size != 0 {
            return Err(Error::invalid(
                OP,
                format!("image size {height}×{width} (H×W) is not divisible by the patch size {patch_size}"),
            ));
        }
        let p = patch_size;
        let dim = match conv_weight.dims() {
            &[d, c, ph, pw] if c == channels && ph == p && pw == p => d,
            _ => {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "conv weight must be [D, {channels}, {p}, {p}] for {channels}-channel images and patch size {p}, got shape {}",
                        conv_weight.shape()
                    ),
                ));
            }
        };
        if class_embedding.dims() != [dim] {
            return Err(Error::invalid(
                OP,
                format!("class embedding must be [{dim}], got shape {}", class_embedding.shape()),
            ));
        }
        let grid = PatchGrid { batch, channels, height, width, patch: p, dim };
        if positional_embedding.dims() != [grid.tokens(), dim] {
            return Err(Error::invalid(
                OP,
                format!(
                    "positional embedding must be [{}, {dim}] for a {}×{} patch grid, got shape {}; resize it with resize_pos_embed",
                    grid.tokens(),
                    grid.grid_h(),
                    grid.grid_w(),
                    positional_embedding.shape()
                ),
            ));
        }
        Ok(grid)
    }

    pub fn grid_h(&self) -> usize {
        self.height / self.patch
    }

    pub fn grid_w(&self) -> usize {
        self.width / self.patch
    }

    /// Tokens per image: the class token, then one per patch in row-major order.
    pub fn tokens(&self) -> usize {
        1 + self.grid_h() * self.grid_w()
    }

    /// Length of a flattened patch (channel, row, column), the GEMM's inner dimension.
    pub fn patch_len(&self) -> usize {
        self.channels * self.patch * self.patch
    }

    /// Rows of the patch matrix and of the output: one per token of each image.
    pub fn rows(&self) -> usize {
        self.batch * self.tokens()
    }

    pub fn image_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.height, self.width]
    }

    pub fn weight_dims(&self) -> [usize; 4] {
        [self.dim, self.channels, self.patch, self.patch]
    }
}
