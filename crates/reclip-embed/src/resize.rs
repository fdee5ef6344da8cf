//! Resizing a ViT positional embedding to another patch grid, as open_clip's
//! `resize_pos_embed` does when a model meets another image size (RECLIP's
//! switch from 64px to 224px, or evaluation at any size): the class token's
//! row is kept unchanged and the grid rows are resampled as an image with D
//! channels by PyTorch's
//! `F.interpolate(size=(h', w'), mode="bicubic", align_corners=False, antialias=True)`.
//!
//! What that computes (PyTorch's antialiased, separable resampling, the
//! `_upsample_bicubic2d_aa` kernels, which follow Pillow's): along an axis of
//! n input and m output pixels, with scale s = n/m, output i is centred at
//! c = (i + ½)·s in input pixel units. With stretch σ = max(s, 1), input j
//! gets weight K((j + ½ − c)/σ), where K is Keys' cubic convolution kernel
//! with a = −½ (the antialiased path's constant; F.interpolate's plain
//! bicubic uses a = −¾ and clamps taps at the border instead), which is
//! nonzero for |x| < 2: 4 taps when upsampling, 4s when downsampling. Taps
//! that fall outside the input are dropped, and each output's weights are
//! divided by their sum. The two axes are applied one after the other.
//!
//! The table is small, so the resize runs on the CPU in f64 whatever the
//! device, and the result comes back in the input's dtype, on its device.

use reclip_core::{Error, Result, Tensor};

const OP: &str = "resize_pos_embed";

/// Keys' cubic convolution kernel with a = −½.
fn keys_cubic(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        (1.5 * x - 2.5) * x * x + 1.0
    } else if x < 2.0 {
        ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    } else {
        0.0
    }
}

/// The resampling matrix of one axis, [output, input] row-major; each row
/// holds one output pixel's normalised tap weights.
fn axis_weights(input: usize, output: usize) -> Vec<f64> {
    let scale = input as f64 / output as f64;
    let stretch = scale.max(1.0);
    let support = 2.0 * stretch;
    let mut w = vec![0.0; output * input];
    for (i, row) in w.chunks_mut(input).enumerate() {
        let centre = (i as f64 + 0.5) * scale;
        let first = (centre - support + 0.5).floor().max(0.0) as usize;
        let end = ((centre + support + 0.5).floor() as usize).min(input);
        for (j, v) in row.iter_mut().enumerate().take(end).skip(first) {
            *v = keys_cubic((j as f64 + 0.5 - centre) / stretch);
        }
        let total: f64 = row.iter().sum();
        if total != 0.0 {
            row.iter_mut().for_each(|v| *v /= total);
        }
    }
    w
}

/// `pos` [1 + g·g, D] (class token first, then a square g×g grid in
/// row-major order) resized to a `new_grid`×`new_grid` grid: [1 + new_grid², D].
pub fn resize_pos_embed(pos: &Tensor, new_grid: usize) -> Result<Tensor> {
    let rows = match pos.dims() {
        &[rows, _] => rows,
        _ => return Err(Error::invalid(OP, format!("expected [1 + g·g, D], got shape {}", pos.shape()))),
    };
    let g = rows.saturating_sub(1).isqrt();
    if rows < 2 || g * g != rows - 1 {
        return Err(Error::invalid(
            OP,
            format!("{rows} rows are not a class token plus a square grid (1 + g·g); use resize_pos_embed_grid"),
        ));
    }
    resize_pos_embed_grid(pos, [g, g], [new_grid, new_grid])
}

/// `pos` [1 + h·w, D] over an h×w grid (`from` = [h, w]) resized to the
/// grid `to` = [h', w']: [1 + h'·w', D]. Non-square grids come from images
/// whose sides differ.
pub fn resize_pos_embed_grid(pos: &Tensor, from: [usize; 2], to: [usize; 2]) -> Result<Tensor> {
    if !pos.dtype().is_float() {
        return Err(Error::DType { op: OP, got: pos.dtype(), expected: "f32, bf16 or f64" });
    }
    let dim = match pos.dims() {
        &[rows, dim] if rows == 1 + from[0] * from[1] => dim,
        _ => {
            return Err(Error::invalid(
                OP,
                format!(
                    "a {}×{} grid needs [{}, D], got shape {}",
                    from[0],
                    from[1],
                    1 + from[0] * from[1],
                    pos.shape()
                ),
            ));
        }
    };
    if from.contains(&0) || to.contains(&0) {
        return Err(Error::invalid(OP, format!("grids must be non-empty, got {from:?} → {to:?}")));
    }
    if from == to {
        return Ok(pos.clone());
    }
    let v = pos.to_vec_f64()?;
    let (wy, wx) = (axis_weights(from[0], to[0]), axis_weights(from[1], to[1]));
    let grid = &v[dim..];
    // Along the rows (x) first: [h, w, D] → [h, w', D].
    let mut across = vec![0.0; from[0] * to[1] * dim];
    for y in 0..from[0] {
        for ox in 0..to[1] {
            let dst = &mut across[(y * to[1] + ox) * dim..][..dim];
            for (ix, &w) in wx[ox * from[1]..][..from[1]].iter().enumerate() {
                if w != 0.0 {
                    let src = &grid[(y * from[1] + ix) * dim..][..dim];
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
                }
            }
        }
    }
    // Then along the columns (y): [h, w', D] → [h', w', D], after the class row.
    let mut out = v[..dim].to_vec();
    out.resize(dim * (1 + to[0] * to[1]), 0.0);
    for oy in 0..to[0] {
        let dst = &mut out[dim * (1 + oy * to[1])..][..to[1] * dim];
        for (iy, &w) in wy[oy * from[0]..][..from[0]].iter().enumerate() {
            if w != 0.0 {
                let src = &across[iy * to[1] * dim..][..to[1] * dim];
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
            }
        }
    }
    Tensor::from_f64s(&out, [1 + to[0] * to[1], dim], pos.dtype(), pos.device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_keys_cubic_with_a_minus_half() {
        // Interpolating at the nodes, C¹ at |x| = 1, zero from 2 on.
        assert_eq!(keys_cubic(0.0), 1.0);
        assert_eq!(keys_cubic(1.0), 0.0);
        assert_eq!(keys_cubic(-2.0), 0.0);
        assert_eq!(keys_cubic(2.5), 0.0);
        // K(½) = (a + 2)/8 − (a + 3)/4 + 1 and K(3/2) = a·(27/8 − 45/4 + 12 − 4) with a = −½.
        assert!((keys_cubic(0.5) - 0.5625).abs() < 1e-15);
        assert!((keys_cubic(-1.5) + 0.0625).abs() < 1e-15);
    }

    #[test]
    fn weights_are_normalised_and_drop_outside_taps() {
        for (n, m) in [(2, 14), (14, 4), (4, 14), (7, 5), (14, 14)] {
            let w = axis_weights(n, m);
            for row in w.chunks(n) {
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{n}→{m}: {row:?}");
            }
        }
        // Same size: the identity (K vanishes at nonzero integers).
        let w = axis_weights(5, 5);
        for (i, row) in w.chunks(5).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                assert_eq!(v, if i == j { 1.0 } else { 0.0 });
            }
        }
    }
}
