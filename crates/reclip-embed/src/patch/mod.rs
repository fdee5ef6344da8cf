//! The ViT stem: images [B, C, H, W] → tokens [B, 1 + gh·gw, D].
//!
//! Both devices compute it as one GEMM over a patch matrix `cols`
//! [B·T, C·P·P] (T = 1 + gh·gw tokens per image) whose class-token rows are
//! zero: `tokens = cols · Wᵀ + pos (+ cls in row 0)`. The zero rows cost
//! 1/T of the GEMM and make every product a single plain GEMM over
//! contiguous rows, forward (`cols · Wᵀ`) and backward (`doutᵀ · cols`,
//! `dout · W`).

mod cpu;
mod gpu;
mod grid;

pub use grid::PatchGrid;

use crate::batch_sum::batch_sum;
use reclip_autograd::{Op, Var};
use reclip_core::{DeviceOp, Error, GpuDevice, Real, Result, Tensor};

const OP: &str = "patch_embed";

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

/// The forward on one device: the tokens and the patch matrix.
struct Forward<'a> {
    images: &'a Tensor,
    conv_weight: &'a Tensor,
    class_embedding: &'a Tensor,
    positional_embedding: &'a Tensor,
    grid: PatchGrid,
}

impl DeviceOp for Forward<'_> {
    type Output = (Tensor, Tensor);
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Self::Output> {
        cpu::forward::<T>(self.images, self.conv_weight, self.class_embedding, self.positional_embedding, &self.grid)
    }

    fn gpu(self, device: &GpuDevice) -> Result<Self::Output> {
        gpu::forward(device, self.images, self.conv_weight, self.class_embedding, self.positional_embedding, &self.grid)
    }
}

pub fn patch_embed_forward(
    images: &Tensor,
    conv_weight: &Tensor,
    class_embedding: &Tensor,
    positional_embedding: &Tensor,
    patch_size: usize,
) -> Result<PatchEmbedOutput> {
    let grid = PatchGrid::new(images, conv_weight, class_embedding, positional_embedding, patch_size)?;
    let (tokens, columns) = Forward { images, conv_weight, class_embedding, positional_embedding, grid }.run(images)?;
    Ok(PatchEmbedOutput { tokens, columns, grid })
}

/// The images' gradient from the patch matrix's on one device.
struct Col2im<'a> {
    dcols: &'a Tensor,
    grid: PatchGrid,
}

impl DeviceOp for Col2im<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        cpu::col2im::<T>(self.dcols, &self.grid)
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::col2im(device, self.dcols, &self.grid)
    }
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
            Some(Col2im { dcols: &dcols, grid: *grid }.run(&dcols)?)
        }
        (true, None) => return Err(Error::invalid(OP, "the images' gradient needs the conv weight")),
    };
    let (positional, class) = if needs[2] || needs[3] {
        let (pos, cls) = batch_sum(grad, grid.tokens(), needs[2])?;
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

/// The patch-embedding node: inputs images, conv weight, class embedding,
/// positional embedding.
struct PatchEmbed {
    patch_size: usize,
}

/// What the backward needs: the patch matrix only where the conv weight
/// wants a gradient, the weight only where the images do.
struct PatchEmbedSaved {
    grid: PatchGrid,
    columns: Option<Tensor>,
    conv_weight: Option<Tensor>,
}

impl Op<4> for PatchEmbed {
    const NAME: &'static str = OP;
    type Saved = PatchEmbedSaved;

    fn forward(
        &self,
        [images, conv_weight, class_embedding, positional_embedding]: [&Tensor; 4],
        needs: [bool; 4],
    ) -> Result<(Tensor, PatchEmbedSaved)> {
        let out = patch_embed_forward(images, conv_weight, class_embedding, positional_embedding, self.patch_size)?;
        let saved = PatchEmbedSaved {
            grid: out.grid,
            columns: needs[1].then_some(out.columns),
            conv_weight: needs[0].then(|| conv_weight.clone()),
        };
        Ok((out.tokens, saved))
    }

    fn backward(self, s: PatchEmbedSaved, grad: &Tensor, needs: [bool; 4]) -> Result<[Option<Tensor>; 4]> {
        let grads = patch_embed_backward(grad, &s.grid, s.columns.as_ref(), s.conv_weight.as_ref(), needs)?;
        Ok([grads.images, grads.conv_weight, grads.class_embedding, grads.positional_embedding])
    }
}

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
    PatchEmbed { patch_size }.apply([images, conv_weight, class_embedding, positional_embedding])
}
