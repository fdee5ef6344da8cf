//! CPU path of what the linear layers compute besides their GEMMs (the bias,
//! the activation and its derivative, bias gradients), generic over the
//! compute type: f32 for f32 and bf16 tensors (bf16 results rounded once),
//! f64 for gradient checks. Bias gradients are summed per fixed block of
//! rows and the blocks added in order, so they do not depend on the thread
//! count.

use crate::Activation;
use rayon::prelude::*;
use reclip_core::cpu::gelu_tanh::{gelu_tanh, gelu_tanh_derivative};
use reclip_core::{DType, Element, Real};

/// Rows per parallel task of the column sums.
const ROWS_PER_TASK: usize = 64;
/// Elements per parallel task of the activation.
const ELEMENTS_PER_TASK: usize = 16384;
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

pub fn activate<T: Real>(act: Activation, u: T) -> T {
    match act {
        Activation::Gelu => c::<T>(0.5) * u * (T::one() + erf(u * c(std::f64::consts::FRAC_1_SQRT_2))),
        Activation::GeluTanh => gelu_tanh(u),
        Activation::QuickGelu => u * sigmoid(c::<T>(QUICK_GELU_SCALE) * u),
    }
}

/// d act / du: GELU' = Φ(u) + u·φ(u); QuickGELU' = s·(1 + 1.702·u·(1 − s)) with
/// s = σ(1.702u); the tanh approximation's, [`gelu_tanh_derivative`].
pub fn derivative<T: Real>(act: Activation, u: T) -> T {
    match act {
        Activation::Gelu => {
            let cdf = c::<T>(0.5) * (T::one() + erf(u * c(std::f64::consts::FRAC_1_SQRT_2)));
            let pdf = c::<T>(0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2)
                * (c::<T>(-0.5) * u * u).exp();
            cdf + u * pdf
        }
        Activation::GeluTanh => gelu_tanh_derivative(u),
        Activation::QuickGelu => {
            let s = sigmoid(c::<T>(QUICK_GELU_SCALE) * u);
            s * (T::one() + c::<T>(QUICK_GELU_SCALE) * u * (T::one() - s))
        }
    }
}

/// z += bias over rows of `bias.len()` columns, in place: the product is
/// fresh, and a copy of it was a pass over the layer's output.
pub fn add_bias<T: Real>(z: &mut [T], bias: &[T]) {
    if !bias.is_empty() {
        z.par_chunks_mut(bias.len()).for_each(|row| row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b));
    }
}

/// h = act(u).
pub fn act_forward<T: Real>(u: &[T], act: Activation) -> Vec<T> {
    let mut h = vec![T::zero(); u.len()];
    if T::DTYPE == DType::F32 {
        let (u, h32): (&[f32], &mut [f32]) = (bytemuck::cast_slice(u), bytemuck::cast_slice_mut(&mut h));
        h32.par_chunks_mut(ELEMENTS_PER_TASK)
            .zip(u.par_chunks(ELEMENTS_PER_TASK))
            .for_each(|(h, u)| crate::simd::forward(u, act, h));
        return h;
    }
    h.par_iter_mut().zip(u.par_iter()).for_each(|(o, &v)| *o = activate(act, v));
    h
}

/// du = dh·act'(u).
pub fn act_backward<T: Real>(dh: &[T], u: &[T], act: Activation) -> Vec<T> {
    let mut du = vec![T::zero(); u.len()];
    if T::DTYPE == DType::F32 {
        let (dh, u): (&[f32], &[f32]) = (bytemuck::cast_slice(dh), bytemuck::cast_slice(u));
        let du32: &mut [f32] = bytemuck::cast_slice_mut(&mut du);
        du32.par_chunks_mut(ELEMENTS_PER_TASK)
            .zip(dh.par_chunks(ELEMENTS_PER_TASK).zip(u.par_chunks(ELEMENTS_PER_TASK)))
            .for_each(|(d, (g, u))| crate::simd::backward(g, u, act, d));
        return du;
    }
    du.par_iter_mut().zip(dh.par_iter().zip(u.par_iter())).for_each(|(d, (&g, &v))| *d = g * derivative(act, v));
    du
}

/// Σ_rows dy over rows of `cols` columns: each task sums its block of rows
/// in order, then the blocks are added in order. Whole rows are added as
/// slices so that the loop runs in SIMD lanes across columns; each column's
/// order of additions is the same.
pub fn bias_grad<T: Real>(dy: &[T], cols: usize) -> Vec<T> {
    let mut out = vec![T::zero(); cols];
    if cols == 0 {
        return out;
    }
    let partials: Vec<Vec<T>> = dy
        .par_chunks(ROWS_PER_TASK * cols)
        .map(|block| {
            let mut acc = vec![T::zero(); cols];
            for row in block.chunks_exact(cols) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
            acc
        })
        .collect();
    for p in partials {
        out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
    }
    out
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
