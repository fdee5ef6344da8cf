//! The patch embedding on the CPU, generic over the compute type: f32 for f32
//! and bf16 tensors (bf16 results rounded once at the end, as the kernels
//! do), f64 for gradient checks.

use crate::PatchGrid;
use rayon::prelude::*;
use reclip_core::{Device, Real, Result, Tensor};

const OP: &str = "patch_embed";

/// The patch matrix [B·T, C·P·P]: row b·T + t holds patch t-1 of image b
/// flattened as (channel, row, column), the weight's layout; row b·T is zero.
pub fn im2col<T: Real>(images: &[T], g: &PatchGrid) -> Vec<T> {
    let (p, k, t) = (g.patch, g.patch_len(), g.tokens());
    let mut cols = vec![T::zero(); g.rows() * k];
    if k == 0 {
        return cols;
    }
    cols.par_chunks_mut(k).enumerate().for_each(|(row, dst)| {
        let (b, tok) = (row / t, row % t);
        if tok == 0 {
            return;
        }
        let (gy, gx) = ((tok - 1) / g.grid_w(), (tok - 1) % g.grid_w());
        for c in 0..g.channels {
            for py in 0..p {
                let src = ((b * g.channels + c) * g.height + gy * p + py) * g.width + gx * p;
                dst[(c * p + py) * p..][..p].copy_from_slice(&images[src..src + p]);
            }
        }
    });
    cols
}

/// The inverse of [`im2col`] on gradients: patches do not overlap, so each
/// pixel takes its one element of `dcols` (class rows are dropped).
pub fn col2im<T: Real>(dcols: &Tensor, g: &PatchGrid) -> Result<Tensor> {
    let src = dcols.cpu_real::<T>(OP)?;
    let (p, k, t) = (g.patch, g.patch_len(), g.tokens());
    let mut out = vec![T::zero(); g.image_dims().iter().product()];
    let plane = g.height * g.width;
    if plane > 0 {
        out.par_chunks_mut(plane).enumerate().for_each(|(bc, dst)| {
            let (b, c) = (bc / g.channels, bc % g.channels);
            for y in 0..g.height {
                for gx in 0..g.grid_w() {
                    let row = b * t + 1 + (y / p) * g.grid_w() + gx;
                    let from = row * k + (c * p + y % p) * p;
                    dst[y * g.width + gx * p..][..p].copy_from_slice(&src[from..from + p]);
                }
            }
        });
    }
    Ok(Tensor::from_real(out, g.image_dims(), dcols.dtype()))
}

/// `cols · Wᵀ + pos (+ cls in each class row)`, and the patch matrix itself.
pub fn forward<T: Real>(
    images: &Tensor,
    conv_weight: &Tensor,
    class_embedding: &Tensor,
    positional_embedding: &Tensor,
    g: &PatchGrid,
) -> Result<(Tensor, Tensor)> {
    let dtype = images.dtype();
    let cols = im2col(&images.cpu_real::<T>(OP)?, g);
    let cols = Tensor::from_vec(cols, [g.rows(), g.patch_len()], &Device::Cpu)?;
    let w = conv_weight.to_dtype(T::DTYPE)?.reshape([g.dim, g.patch_len()])?;
    let mut out = cols.matmul(&w.transpose(0, 1)?)?.cpu_real::<T>(OP)?.into_owned();
    let cls = class_embedding.cpu_real::<T>(OP)?;
    let pos = positional_embedding.cpu_real::<T>(OP)?;
    let per_image = g.tokens() * g.dim;
    if per_image > 0 {
        out.par_chunks_mut(per_image).for_each(|image| {
            for (o, &p) in image.iter_mut().zip(pos.iter()) {
                *o += p;
            }
            for (o, &c) in image.iter_mut().zip(cls.iter()) {
                *o += c;
            }
        });
    }
    Ok((Tensor::from_real(out, [g.batch, g.tokens(), g.dim], dtype), cols.to_dtype(dtype)?))
}
