//! The CPU path: the kernels' tiled computation in the compute type `T` (f32
//! for f32 and bf16 embeddings, f64 for gradient checks). Rayon tasks own
//! blocks of `ROW_BLOCK` rows and sweep the other side in tiles of `COL_TILE`
//! rows; a tile of logits is the only matrix of logits that exists. Each
//! task's work is fixed by the sizes alone, so results do not depend on the
//! number of threads.

use rayon::prelude::*;
use reclip_core::Real;
use reclip_core::cpu::gemm::{HostMatrix, gemm_strided};

pub(crate) const ROW_BLOCK: usize = 64;
pub(crate) const COL_TILE: usize = 256;

/// F.normalize's default epsilon: x / max(‖x‖, eps).
pub const NORM_EPS: f64 = 1e-12;
/// The largest log-temperature: ln 100 as an f32 (4.6051702), the value
/// open_clip's `logit_scale.clamp_(0, math.log(100))` leaves in its f32
/// parameter. The same constant bounds t for every dtype and device.
pub const MAX_LOG_SCALE: f32 = 4.605_170_2;

/// s = exp(min(t, MAX_LOG_SCALE)): min(exp(t), 100) but for rounding.
pub fn logit_scale<T: Real>(log_scale: T) -> T {
    log_scale.min(T::from_f32(MAX_LOG_SCALE)).exp()
}

/// True where the clamp of t is active, so that d(loss)/dt is zero.
pub fn scale_is_clamped<T: Real>(log_scale: T) -> bool {
    log_scale > T::from_f32(MAX_LOG_SCALE)
}

/// Rows of the [rows, d] matrix `x` divided by max(‖row‖, eps), and the norms.
pub fn normalize<T: Real>(x: &[T], d: usize) -> (Vec<T>, Vec<T>) {
    let eps = T::from_f64(NORM_EPS);
    let mut hat = vec![T::zero(); x.len()];
    let mut norm = vec![T::zero(); x.len() / d];
    hat.par_chunks_mut(d).zip(norm.par_iter_mut()).zip(x.par_chunks(d)).for_each(|((h, n), row)| {
        *n = row.iter().map(|&v| v * v).sum::<T>().sqrt();
        let denom = n.max(eps);
        h.iter_mut().zip(row).for_each(|(h, &v)| *h = v / denom);
    });
    (hat, norm)
}

/// Back through [`normalize`]: the gradient of each row of x from that of x̂.
pub fn denormalize<T: Real>(hat: &[T], norm: &[T], dhat: &[T], d: usize) -> Vec<T> {
    let eps = T::from_f64(NORM_EPS);
    let mut dx = vec![T::zero(); hat.len()];
    dx.par_chunks_mut(d).zip(hat.par_chunks(d).zip(dhat.par_chunks(d))).zip(norm.par_iter()).for_each(
        |((dx, (h, dh)), &n)| {
            if n >= eps {
                let dot: T = h.iter().zip(dh).map(|(&a, &b)| a * b).sum();
                dx.iter_mut().zip(h.iter().zip(dh)).for_each(|(o, (&h, &dh))| *o = (dh - h * dot) / n);
            } else {
                dx.iter_mut().zip(dh).for_each(|(o, &dh)| *o = dh / eps);
            }
        },
    );
    dx
}

/// `z = scale · a·cᵀ` for a block of rows `a` and a tile of rows `c` (both
/// row-major with `d` columns); `z` is rows(a) × rows(c).
pub(crate) fn logits_tile<T: Real>(a: &[T], c: &[T], d: usize, scale: T, z: &mut [T]) {
    let (rows, cols) = (a.len() / d, c.len() / d);
    debug_assert_eq!(z.len(), rows * cols);
    let lhs = HostMatrix { ptr: a.as_ptr(), rs: d as isize, cs: 1 };
    let rhs = HostMatrix { ptr: c.as_ptr(), rs: 1, cs: d as isize };
    // SAFETY: lhs covers rows×d and rhs d×cols within `a` and `c`; z is rows×cols and aliases neither.
    unsafe { gemm_strided(rows, cols, d, z.as_mut_ptr(), cols as isize, 1, lhs, rhs, scale, false, false) };
}

/// `acc += scale · dz·c` for a rows×cols tile `dz` and `c`'s cols×d rows.
fn accumulate_tile<T: Real>(dz: &[T], c: &[T], d: usize, scale: T, acc: &mut [T]) {
    let (rows, cols) = (acc.len() / d, c.len() / d);
    let lhs = HostMatrix { ptr: dz.as_ptr(), rs: cols as isize, cs: 1 };
    let rhs = HostMatrix { ptr: c.as_ptr(), rs: d as isize, cs: 1 };
    // SAFETY: lhs covers rows×cols of dz, rhs cols×d of c; acc is rows×d and aliases neither.
    unsafe { gemm_strided(rows, d, cols, acc.as_mut_ptr(), d as isize, 1, lhs, rhs, scale, true, false) };
}

/// The row `i`'s label column, `i + offset`, if it lies in `[col0, col0 + cols)`.
pub(crate) fn label_in_tile(i: usize, offset: isize, col0: usize, cols: usize) -> Option<usize> {
    let label = i as isize + offset;
    (label >= col0 as isize && label < (col0 + cols) as isize).then(|| label as usize - col0)
}

/// For each row i of `a`: the logsumexp over j of z_ij = scale·a_i·c_j, and
/// its label logit z_{i, i + label_offset}.
pub fn lse_rows<T: Real>(a: &[T], c: &[T], d: usize, scale: T, label_offset: isize) -> (Vec<T>, Vec<T>) {
    let (m, n) = (a.len() / d, c.len() / d);
    let mut lse = vec![T::zero(); m];
    let mut label = vec![T::zero(); m];
    lse.par_chunks_mut(ROW_BLOCK)
        .zip(label.par_chunks_mut(ROW_BLOCK))
        .zip(a.par_chunks(ROW_BLOCK * d))
        .enumerate()
        .for_each(|(block, ((lse, label), a))| {
            let row0 = block * ROW_BLOCK;
            let rows = lse.len();
            let mut run_max = vec![T::neg_infinity(); rows];
            let mut run_sum = vec![T::zero(); rows];
            let mut z = vec![T::zero(); rows * COL_TILE.min(n)];
            for col0 in (0..n).step_by(COL_TILE) {
                let cols = COL_TILE.min(n - col0);
                let z = &mut z[..rows * cols];
                logits_tile(a, &c[col0 * d..(col0 + cols) * d], d, scale, z);
                for (i, zr) in z.chunks(cols).enumerate() {
                    let tile_max = zr.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
                    let nm = run_max[i].max(tile_max);
                    let tile_sum: T = zr.iter().map(|&v| (v - nm).exp()).sum();
                    run_sum[i] = run_sum[i] * (run_max[i] - nm).exp() + tile_sum;
                    run_max[i] = nm;
                    if let Some(j) = label_in_tile(row0 + i, label_offset, col0, cols) {
                        label[i] = zr[j];
                    }
                }
            }
            for (l, (&mx, &sm)) in lse.iter_mut().zip(run_max.iter().zip(&run_sum)) {
                *l = mx + sm.ln();
            }
        });
    (lse, label)
}

/// How d(loss)/dz_ij is made of softmax terms, for rows i of A and rows j of
/// C: `g · (own.1·exp(z_ij − own.0[i]) + other.1·exp(z_ij − other.0[j]) −
/// label_weight·[j = i + label_offset])`, g the loss's upstream gradient.
pub struct GradTerms<'a, T> {
    pub own: Option<(&'a [T], T)>,
    pub other: Option<(&'a [T], T)>,
    pub label_weight: T,
    pub label_offset: isize,
}

/// d(loss)/dA for the normalised rows A (d(loss)/dz as in [`GradTerms`],
/// z = scale·A·Cᵀ recomputed tile by tile), and per row of A, Σ_j dz_ij·z_ij
/// (whose total is d(loss)/dt where the scale is not clamped).
pub fn grad_rows<T: Real>(a: &[T], c: &[T], d: usize, scale: T, grad: T, terms: &GradTerms<'_, T>) -> (Vec<T>, Vec<T>) {
    let (da, dt_rows, _) = grad_sweep(a, c, d, scale, |i, j, z| {
        let mut p = T::zero();
        if let Some((lse, w)) = terms.own {
            p += w * (z - lse[i]).exp();
        }
        if let Some((lse, w)) = terms.other {
            p += w * (z - lse[j]).exp();
        }
        if j as isize == i as isize + terms.label_offset {
            p = p - terms.label_weight;
        }
        grad * p
    });
    (da, dt_rows)
}

/// The gradient sweep both losses run on the CPU (the kernels'
/// `logit_tiles::grad_sweep`): rayon tasks own blocks of rows of A and
/// sweep C in tiles, recomputing z = scale·A·Cᵀ; d(loss)/dz_ij = `dz(i, j,
/// z_ij)` for row i of A and row j of C. Returns dA = scale·dz·C and, per row
/// of A, Σ_j dz_ij·z_ij and Σ_j dz_ij (for the scale's and a bias's gradients).
pub(crate) fn grad_sweep<T: Real>(
    a: &[T],
    c: &[T],
    d: usize,
    scale: T,
    dz: impl Fn(usize, usize, T) -> T + Sync,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (m, n) = (a.len() / d, c.len() / d);
    let mut da = vec![T::zero(); m * d];
    let (mut dz_z_rows, mut dz_rows) = (vec![T::zero(); m], vec![T::zero(); m]);
    da.par_chunks_mut(ROW_BLOCK * d)
        .zip(dz_z_rows.par_chunks_mut(ROW_BLOCK).zip(dz_rows.par_chunks_mut(ROW_BLOCK)))
        .zip(a.par_chunks(ROW_BLOCK * d))
        .enumerate()
        .for_each(|(block, ((da, (dz_z_rows, dz_rows)), a))| {
            let (row0, rows) = (block * ROW_BLOCK, dz_rows.len());
            let mut z = vec![T::zero(); rows * COL_TILE.min(n)];
            for col0 in (0..n).step_by(COL_TILE) {
                let cols = COL_TILE.min(n - col0);
                let c_tile = &c[col0 * d..(col0 + cols) * d];
                let z = &mut z[..rows * cols];
                logits_tile(a, c_tile, d, scale, z);
                for (i, zr) in z.chunks_mut(cols).enumerate() {
                    for (j, v) in zr.iter_mut().enumerate() {
                        let g = dz(row0 + i, col0 + j, *v);
                        dz_z_rows[i] += g * *v;
                        dz_rows[i] += g;
                        *v = g;
                    }
                }
                accumulate_tile(z, c_tile, d, scale, da);
            }
        });
    (da, dz_z_rows, dz_rows)
}

/// The loss from two sets of (logsumexp, label logit) over `m` rows each:
/// the mean of the two cross-entropies, summed in row order.
pub fn loss_value<T: Real>(lse_a: &[T], label_a: &[T], lse_b: &[T], label_b: &[T]) -> T {
    let m = lse_a.len();
    let mut total = T::zero();
    for i in 0..m {
        total += (lse_a[i] - label_a[i]) + (lse_b[i] - label_b[i]);
    }
    total / T::from_f64(2.0 * m as f64)
}

/// d(loss)/dt from the per-row partial sums of [`grad_rows`], in row order.
pub fn dt_value<T: Real>(rows: &[&[T]], log_scale: T) -> T {
    if scale_is_clamped(log_scale) {
        return T::zero();
    }
    let mut total = T::zero();
    for part in rows {
        for &v in *part {
            total += v;
        }
    }
    total
}
