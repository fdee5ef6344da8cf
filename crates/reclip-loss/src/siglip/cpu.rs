//! The CPU path of the sigmoid loss: the kernels' tiled computation in the
//! compute type `T`, on the CLIP loss's tiles (`crate::cpu`): rayon tasks
//! own blocks of rows and sweep the other side in tiles, so results do not
//! depend on the number of threads.

use crate::cpu::{COL_TILE, ROW_BLOCK, grad_sweep, label_in_tile, logits_tile};
use rayon::prelude::*;
use reclip_core::Real;

/// softplus(x) = ln(1 + eˣ) without overflow: max(x, 0) + ln(1 + e^−|x|).
fn softplus<T: Real>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

/// The label of the pair in row i, column j of a tile: +1 for the matching
/// pair, −1 for every other.
fn label<T: Real>(matching: bool) -> T {
    if matching { T::one() } else { -T::one() }
}

/// Per row i of `a`: Σ_j softplus(−y_ij·z_ij) with z_ij = scale·a_i·c_j +
/// bias and y_ij = +1 where j = i + `label_offset`, −1 elsewhere.
pub fn rows<T: Real>(a: &[T], c: &[T], d: usize, scale: T, bias: T, label_offset: isize) -> Vec<T> {
    let (m, n) = (a.len() / d, c.len() / d);
    let mut out = vec![T::zero(); m];
    out.par_chunks_mut(ROW_BLOCK).zip(a.par_chunks(ROW_BLOCK * d)).enumerate().for_each(|(block, (out, a))| {
        let (row0, rows) = (block * ROW_BLOCK, out.len());
        let mut z = vec![T::zero(); rows * COL_TILE.min(n)];
        for col0 in (0..n).step_by(COL_TILE) {
            let cols = COL_TILE.min(n - col0);
            let z = &mut z[..rows * cols];
            logits_tile(a, &c[col0 * d..(col0 + cols) * d], d, scale, z);
            for (i, (zr, o)) in z.chunks(cols).zip(out.iter_mut()).enumerate() {
                let matching = label_in_tile(row0 + i, label_offset, col0, cols);
                for (j, &v) in zr.iter().enumerate() {
                    *o += softplus(-label::<T>(matching == Some(j)) * (v + bias));
                }
            }
        }
    });
    out
}

/// d(loss)/dA for the normalised rows A, with d(loss)/dz_ij = −gw·y_ij·σ(−y_ij·z_ij)
/// (z recomputed tile by tile; `gw` is the upstream gradient times the
/// loss's weight), and per row of A the partial sums Σ_j dz_ij·(z_ij − bias)
/// and Σ_j dz_ij, whose totals are d(loss)/dt and d(loss)/dbias.
pub fn grad_rows<T: Real>(
    a: &[T],
    c: &[T],
    d: usize,
    scale: T,
    bias: T,
    gw: T,
    label_offset: isize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    grad_sweep(a, c, d, scale, |i, j, z| {
        let y = label::<T>(j as isize == i as isize + label_offset);
        -gw * y / (T::one() + (y * (z + bias)).exp())
    })
}

/// weight · Σ rows, in row order.
pub fn total<T: Real>(rows: &[T], weight: T) -> T {
    let mut sum = T::zero();
    for &v in rows {
        sum += v;
    }
    weight * sum
}
