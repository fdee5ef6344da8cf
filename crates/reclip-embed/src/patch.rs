//! The ViT stem: images [B, C, H, W] → tokens [B, 1 + gh·gw, D].
//!
//! Both devices compute it as one GEMM over a patch matrix `cols`
//! [B·T, C·P·P] (T = 1 + gh·gw tokens per image) whose class-token rows are
//! zero: `tokens = cols · Wᵀ + pos (+ cls in row 0)`. The zero rows cost
//! 1/T of the GEMM and make every product a single plain GEMM over
//! contiguous rows, forward (`cols · Wᵀ`) and backward (`doutᵀ · cols`,
//! `dout · W`).

use crate::{cpu, gpu, reduce};
use reclip_core::ops::check_same;
use reclip_core::{Device, Error, Result, Tensor, with_real};

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

/// The tokens, and what the backward pass needs.
pub struct PatchEmbedOutput {
    /// [B, 1 + gh·gw, D]: class token first, then the patches in row-major order.
    pub tokens: Tensor,
    /// The patch matrix [B·T, C·P·P] the GEMM read (zero rows at the class
    /// tokens); the weight gradient is `doutᵀ · columns`.
    pub columns: Tensor,
    pub grid: PatchGrid,
}

/// Gradients of the four inputs, each where asked for.
pub struct PatchEmbedGrads {
    pub images: Option<Tensor>,
    pub conv_weight: Option<Tensor>,
    pub class_embedding: Option<Tensor>,
    pub positional_embedding: Option<Tensor>,
}

pub fn patch_embed_forward(
    images: &Tensor,
    conv_weight: &Tensor,
    class_embedding: &Tensor,
    positional_embedding: &Tensor,
    patch_size: usize,
) -> Result<PatchEmbedOutput> {
    let grid = PatchGrid::new(images, conv_weight, class_embedding, positional_embedding, patch_size)?;
    let (tokens, columns) = match images.device() {
        Device::Cpu => with_real!(images.dtype(), OP, T => {
            cpu::patch_embed_forward::<T>(images, conv_weight, class_embedding, positional_embedding, &grid)
        })?,
        Device::Gpu(_) => gpu::patch_embed_forward(images, conv_weight, class_embedding, positional_embedding, &grid)?,
    };
    Ok(PatchEmbedOutput { tokens, columns, grid })
}

/// Gradients of the patch embedding from the tokens' gradient `grad`.
/// `needs` = [images, conv weight, class embedding, positional embedding];
/// the weight's gradient needs `columns`, the images' needs `conv_weight`.
pub fn patch_embed_backward(
    grad: &Tensor,
    grid: &PatchGrid,
    columns: Option<&Tensor>,
    conv_weight: Option<&Tensor>,
    needs: [bool; 4],
) -> Result<PatchEmbedGrads> {
    let expected = [grid.batch, grid.tokens(), grid.dim];
    if grad.dims() != expected {
        return Err(Error::invalid(
            OP,
            format!("the gradient must have the tokens' shape {expected:?}, got {}", grad.shape()),
        ));
    }
    let (m, k) = (grid.rows(), grid.patch_len());
    let g2 = grad.reshape([m, grid.dim])?;
    let weight_grad = match (needs[1], columns) {
        (false, _) => None,
        (true, Some(cols)) => Some(g2.transpose(0, 1)?.matmul(cols)?.reshape(grid.weight_dims())?),
        (true, None) => return Err(Error::invalid(OP, "the conv weight's gradient needs the patch matrix")),
    };
    let image_grad = match (needs[0], conv_weight) {
        (false, _) => None,
        (true, Some(w)) => {
            let dcols = g2.matmul(&w.reshape([grid.dim, k])?)?;
            Some(match dcols.device() {
                Device::Cpu => with_real!(dcols.dtype(), OP, T => cpu::col2im::<T>(&dcols, grid))?,
                Device::Gpu(_) => gpu::col2im(&dcols, grid)?,
            })
        }
        (true, None) => return Err(Error::invalid(OP, "the images' gradient needs the conv weight")),
    };
    let (positional, class) = if needs[2] || needs[3] {
        let (pos, cls) = reduce::batch_sum(grad, grid.tokens(), needs[2])?;
        (needs[3].then_some(pos), cls)
    } else {
        (None, None)
    };
    Ok(PatchEmbedGrads {
        images: image_grad,
        conv_weight: weight_grad,
        class_embedding: class,
        positional_embedding: positional,
    })
}
