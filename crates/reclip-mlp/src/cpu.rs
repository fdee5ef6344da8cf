//! CPU path of the linear layers' epilogues, generic over the compute type:
//! f32 for f32 and bf16 tensors (bf16 results rounded once), f64 for
//! gradient checks. Bias gradients are summed per fixed block of rows and
//! the blocks added in order, so they do not depend on the thread count.

use crate::Activation;
use rayon::prelude::*;
use reclip_core::{DType, Element, Real};

/// Rows per parallel task of the backward pass.
const ROWS_PER_TASK: usize = 64;
const QUICK_GELU_SCALE: f64 = 1.702;

fn erf<T: Real>(x: T) -> T {
    if T::DTYPE == DType::F32 {
        T::from_f32(erf_f32(x.to_f32().unwrap_or(f32::NAN)))
    } else {
        <T as Element>::from_f64(libm::erf(Element::to_f64(x)))
    }
}

/// erf to within 5e-7 absolute: Abramowitz & Stegun 7.1.26 (1.5e-7) in f32
/// arithmetic, a few f32 ulps. The same formula as the vectorised path
/// (`simd.rs`), of which this is the scalar tail; f64 (gradient checks)
/// keeps libm's erf.
pub(crate) fn erf_f32(x: f32) -> f32 {
    use crate::simd::{ERF_A as A, ERF_P as P};
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * (-ax * ax).exp();
    y.copysign(x)
}

fn c<T: Real>(v: f64) -> T {
    <T as Element>::from_f64(v)
}

fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

pub fn activate<T: Real>(act: Option<Activation>, u: T) -> T {
    match act {
        None => u,
        Some(Activation::Gelu) => c::<T>(0.5) * u * (T::one() + erf(u * c(std::f64::consts::FRAC_1_SQRT_2))),
        Some(Activation::QuickGelu) => u * sigmoid(c::<T>(QUICK_GELU_SCALE) * u),
    }
}

/// d act / du: GELU' = Φ(u) + u·φ(u); QuickGELU' = s·(1 + 1.702·u·(1 − s)) with s = σ(1.702u).
pub fn derivative<T: Real>(act: Activation, u: T) -> T {
    match act {
        Activation::Gelu => {
            let cdf = c::<T>(0.5) * (T::one() + erf(u * c(std::f64::consts::FRAC_1_SQRT_2)));
            let pdf = c::<T>(0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2)
                * (c::<T>(-0.5) * u * u).exp();
            cdf + u * pdf
        }
        Activation::QuickGelu => {
            let s = sigmoid(c::<T>(QUICK_GELU_SCALE) * u);
            s * (T::one() + c::<T>(QUICK_GELU_SCALE) * u * (T::one() - s))
        }
    }
}

/// y = act(z + bias) over rows of `bias.len()` columns.
pub fn bias_act_forward<T: Real>(z: &[T], bias: &[T], act: Option<Activation>) -> Vec<T> {
    let mut y = vec![T::zero(); z.len()];
    if bias.is_empty() {
        return y;
    }
    if T::DTYPE == DType::F32 {
        let (z, bias): (&[f32], &[f32]) = (bytemuck::cast_slice(z), bytemuck::cast_slice(bias));
        let y32: &mut [f32] = bytemuck::cast_slice_mut(&mut y);
        y32.par_chunks_mut(bias.len())
            .zip(z.par_chunks(bias.len()))
            .for_each(|(yr, zr)| crate::simd::forward_row(zr, bias, act, yr));
        return y;
    }
    y.par_chunks_mut(bias.len()).zip(z.par_chunks(bias.len())).for_each(|(yr, zr)| {
        for ((o, &v), &b) in yr.iter_mut().zip(zr).zip(bias) {
            *o = activate(act, v + b);
        }
    });
    y
}

/// Column sums of the [rows, cols] matrix whose element (r, j) is `at(r, j)`.
fn column_sums<T: Real>(rows: usize, cols: usize, at: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::zero(); cols];
    let tasks = rows.div_ceil(ROWS_PER_TASK);
    let partials: Vec<Vec<T>> = (0..tasks)
        .into_par_iter()
        .map(|t| {
            let mut acc = vec![T::zero(); cols];
            for r in t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(rows) {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += at(r, j);
                }
            }
            acc
        })
        .collect();
    for p in partials {
        out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
    }
    out
}

/// du = dy·act'(z + bias) and db = Σ_rows du.
pub fn bias_act_backward<T: Real>(dy: &[T], z: &[T], bias: &[T], act: Activation) -> (Vec<T>, Vec<T>) {
    let cols = bias.len();
    let mut du = vec![T::zero(); dy.len()];
    if cols == 0 {
        return (du, Vec::new());
    }
    if T::DTYPE == DType::F32 {
        let (dy, z, bias): (&[f32], &[f32], &[f32]) =
            (bytemuck::cast_slice(dy), bytemuck::cast_slice(z), bytemuck::cast_slice(bias));
        let du32: &mut [f32] = bytemuck::cast_slice_mut(&mut du);
        du32.par_chunks_mut(cols)
            .zip(dy.par_chunks(cols).zip(z.par_chunks(cols)))
            .for_each(|(dr, (gr, zr))| crate::simd::backward_row(gr, zr, bias, act, dr));
    } else {
        du.par_chunks_mut(cols).enumerate().for_each(|(r, dr)| {
            for (j, d) in dr.iter_mut().enumerate() {
                let i = r * cols + j;
                *d = dy[i] * derivative(act, z[i] + bias[j]);
            }
        });
    }
    let db = column_sums(dy.len() / cols, cols, |r, j| du[r * cols + j]);
    (du, db)
}

/// Σ_rows dy over rows of `cols` columns.
pub fn bias_grad<T: Real>(dy: &[T], cols: usize) -> Vec<T> {
    let rows = dy.len().checked_div(cols).unwrap_or(0);
    column_sums(rows, cols, |r, j| dy[r * cols + j])
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_erf_is_within_f32_precision() {
        let worst = (-6000..=6000)
            .map(|i| i as f64 / 1000.0)
            .map(|x| (super::erf_f32(x as f32) as f64 - libm::erf(x)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 5e-7, "worst error {worst}");
    }
}
