//! CPU path of LayerNorm, generic over the compute type: f32 for f32 and
//! bf16 tensors (bf16 results rounded once, as the kernels do), f64 for
//! gradient checks. Rows run in parallel; dgamma and dbeta are summed per
//! fixed block of rows and the blocks added in order, so results do not
//! depend on the thread count. A row's sums run in eight interleaved
//! partial sums (reclip-core's `lane_sum`): one running sum made each a chain of
//! dependent adds, most of LayerNorm's time at widths like 64.

use rayon::prelude::*;
use reclip_core::cpu::reduce::lane_sum;
use reclip_core::{Element, Real};

/// Rows per parallel task of the backward pass.
const ROWS_PER_TASK: usize = 64;

/// Normalised rows, and each row's mean and 1/sqrt(var + eps).
pub fn forward<T: Real>(x: &[T], gamma: &[T], beta: &[T], dim: usize, eps: T) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = x.len().checked_div(dim).unwrap_or(0);
    let mut y = vec![T::zero(); x.len()];
    let mut mean = vec![T::zero(); rows];
    let mut rstd = vec![T::zero(); rows];
    if dim == 0 {
        return (y, mean, rstd);
    }
    let n = <T as Element>::from_f64(dim as f64);
    y.par_chunks_mut(dim).zip(mean.par_iter_mut()).zip(rstd.par_iter_mut()).enumerate().for_each(
        |(r, ((yr, m), s))| {
            let xr = &x[r * dim..][..dim];
            let mu = lane_sum(dim, |j| xr[j]) / n;
            let var = lane_sum(dim, |j| (xr[j] - mu) * (xr[j] - mu)) / n;
            let rs = T::one() / (var + eps).sqrt();
            for (((o, &v), &g), &b) in yr.iter_mut().zip(xr).zip(gamma).zip(beta) {
                *o = (v - mu) * rs * g + b;
            }
            (*m, *s) = (mu, rs);
        },
    );
    (y, mean, rstd)
}

/// dx, dgamma and dbeta from the output gradient and the saved statistics.
pub fn backward<T: Real>(
    dy: &[T],
    x: &[T],
    gamma: &[T],
    mean: &[T],
    rstd: &[T],
    dim: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut dx = vec![T::zero(); x.len()];
    let (mut dgamma, mut dbeta) = (vec![T::zero(); dim], vec![T::zero(); dim]);
    if dim == 0 || x.is_empty() {
        return (dx, dgamma, dbeta);
    }
    let n = <T as Element>::from_f64(dim as f64);
    let partials: Vec<(Vec<T>, Vec<T>)> = dx
        .par_chunks_mut(dim * ROWS_PER_TASK)
        .enumerate()
        .map(|(task, block)| {
            let (mut dg, mut db) = (vec![T::zero(); dim], vec![T::zero(); dim]);
            for (i, dxr) in block.chunks_mut(dim).enumerate() {
                let r = task * ROWS_PER_TASK + i;
                let (xr, dyr) = (&x[r * dim..][..dim], &dy[r * dim..][..dim]);
                let (mu, rs) = (mean[r], rstd[r]);
                let sum_g = lane_sum(dim, |j| dyr[j] * gamma[j]);
                let sum_gx = lane_sum(dim, |j| dyr[j] * gamma[j] * ((xr[j] - mu) * rs));
                for (((dg, db), &dy), &x) in dg.iter_mut().zip(db.iter_mut()).zip(dyr).zip(xr) {
                    *dg += dy * ((x - mu) * rs);
                    *db += dy;
                }
                let (mean_g, mean_gx) = (sum_g / n, sum_gx / n);
                for j in 0..dim {
                    let xhat = (xr[j] - mu) * rs;
                    dxr[j] = rs * (dyr[j] * gamma[j] - mean_g - xhat * mean_gx);
                }
            }
            (dg, db)
        })
        .collect();
    for (dg, db) in partials {
        dgamma.iter_mut().zip(dg).for_each(|(a, v)| *a += v);
        dbeta.iter_mut().zip(db).for_each(|(a, v)| *a += v);
    }
    (dx, dgamma, dbeta)
}
