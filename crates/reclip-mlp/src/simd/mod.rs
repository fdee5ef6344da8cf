//! The f32 CPU activations, eight lanes at a time: libm's scalar erf/exp
//! made GELU a quarter of a CPU training step, and loops that call them do
//! not vectorise. The formulas are written once, over [`Lanes`]: `wide`'s
//! f32x8, which this build compiles for SSE2 (two 4-lane halves), and, where
//! the CPU has AVX2, [`avx2::F32x8`], the same IEEE operations in one 256-bit
//! register each, so both give the same bits, NaN payloads aside
//! (`tests::avx2_matches_wide_bit_for_bit`).
//! The scalar path (`cpu.rs`) uses the same formulas and handles each
//! slice's tail.

#[cfg(target_arch = "x86_64")]
mod avx2;

use crate::Activation;
use crate::cpu::{activate, derivative};
use reclip_core::cpu::gelu_tanh::{CUBIC, SQRT_2_OVER_PI};
use std::ops::{Add, Div, Mul, Neg, Sub};
use wide::f32x8;

/// Abramowitz & Stegun 7.1.26: erf(x) ≈ 1 − (a₁t + … + a₅t⁵)·e^{−x²}, t = 1/(1 + p·x).
pub(crate) const ERF_P: f32 = 0.327_591_1;
pub(crate) const ERF_A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152, 1.061_405_4];
const QUICK_GELU_SCALE: f32 = 1.702;

/// Eight f32 lanes and what the activations need of them.
pub(crate) trait Lanes:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> + Neg<Output = Self>
{
    fn splat(v: f32) -> Self;
    fn load(s: &[f32]) -> Self;
    fn store(self, s: &mut [f32]);
    fn abs(self) -> Self;
    /// e^x as `wide::f32x8::exp` computes it.
    fn exp(self) -> Self;
    /// `if_negative` in the lanes where `self` < 0, `otherwise` elsewhere.
    fn where_negative(self, if_negative: Self, otherwise: Self) -> Self;
}

impl Lanes for f32x8 {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        f32x8::splat(v)
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        f32x8::new(s.try_into().expect("chunks of eight"))
    }
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        s.copy_from_slice(&self.to_array());
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32x8::abs(self)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f32x8::exp(self)
    }
    #[inline(always)]
    fn where_negative(self, if_negative: Self, otherwise: Self) -> Self {
        self.simd_lt(f32x8::ZERO).select(if_negative, otherwise)
    }
}

#[inline(always)]
fn erf<V: Lanes>(x: V) -> V {
    let ax = x.abs();
    let one = V::splat(1.0);
    let t = one / (one + V::splat(ERF_P) * ax);
    let [a0, a1, a2, a3, a4] = ERF_A.map(V::splat);
    let poly = t * (a0 + t * (a1 + t * (a2 + t * (a3 + t * a4))));
    let y = one - poly * (-(ax * ax)).exp();
    // erf is odd: give y the sign of x.
    x.where_negative(-y, y)
}

#[inline(always)]
fn sigmoid<V: Lanes>(x: V) -> V {
    V::splat(1.0) / (V::splat(1.0) + (-x).exp())
}

/// σ(2y) for GELU's tanh approximation, y = √(2/π)(u + 0.044715u³).
#[inline(always)]
fn tanh_gate<V: Lanes>(u: V) -> V {
    let scale = V::splat((2.0 * SQRT_2_OVER_PI) as f32);
    sigmoid(scale * (u + V::splat(CUBIC as f32) * u * u * u))
}

#[inline(always)]
fn act<V: Lanes>(a: Activation, u: V) -> V {
    match a {
        Activation::GeluTanh => u * tanh_gate(u),
        Activation::Gelu => V::splat(0.5) * u * (V::splat(1.0) + erf(u * V::splat(std::f32::consts::FRAC_1_SQRT_2))),
        Activation::QuickGelu => u * sigmoid(V::splat(QUICK_GELU_SCALE) * u),
    }
}

#[inline(always)]
fn grad<V: Lanes>(a: Activation, u: V) -> V {
    let one = V::splat(1.0);
    match a {
        Activation::GeluTanh => {
            let s = tanh_gate(u);
            let slope = V::splat((2.0 * SQRT_2_OVER_PI) as f32) * (one + V::splat((3.0 * CUBIC) as f32) * u * u);
            s + u * s * (one - s) * slope
        }
        Activation::Gelu => {
            let cdf = V::splat(0.5) * (one + erf(u * V::splat(std::f32::consts::FRAC_1_SQRT_2)));
            let k = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
            let pdf = V::splat(k) * (V::splat(-0.5) * u * u).exp();
            cdf + u * pdf
        }
        Activation::QuickGelu => {
            let k = V::splat(QUICK_GELU_SCALE);
            let s = sigmoid(k * u);
            s * (one + k * u * (one - s))
        }
    }
}

/// h = act(u) over whole groups of eight; returns how many elements it did.
#[inline(always)]
fn forward_lanes<V: Lanes>(u: &[f32], a: Activation, h: &mut [f32]) -> usize {
    let n = u.len() / 8 * 8;
    for (h8, u8) in h[..n].chunks_exact_mut(8).zip(u[..n].chunks_exact(8)) {
        act(a, V::load(u8)).store(h8);
    }
    n
}

/// du = dh · act'(u) over whole groups of eight; returns how many it did.
#[inline(always)]
fn backward_lanes<V: Lanes>(dh: &[f32], u: &[f32], a: Activation, du: &mut [f32]) -> usize {
    let n = u.len() / 8 * 8;
    for ((d8, g8), u8) in du[..n].chunks_exact_mut(8).zip(dh[..n].chunks_exact(8)).zip(u[..n].chunks_exact(8)) {
        (V::load(g8) * grad(a, V::load(u8))).store(d8);
    }
    n
}

/// h = act(u).
pub fn forward(u: &[f32], a: Activation, h: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    let n = if avx2::available() {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { avx2::forward(u, a, h) }
    } else {
        forward_lanes::<f32x8>(u, a, h)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let n = forward_lanes::<f32x8>(u, a, h);
    for i in n..u.len() {
        h[i] = activate(a, u[i]);
    }
}

/// du = dh · act'(u).
pub fn backward(dh: &[f32], u: &[f32], a: Activation, du: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    let n = if avx2::available() {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { avx2::backward(dh, u, a, du) }
    } else {
        backward_lanes::<f32x8>(dh, u, a, du)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let n = backward_lanes::<f32x8>(dh, u, a, du);
    for i in n..u.len() {
        du[i] = dh[i] * derivative(a, u[i]);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Inputs across every branch of exp and erf: zeros of both signs, the
    /// rounding boundaries of exp's range reduction, its underflow and
    /// overflow limits, subnormals, infinities, NaN, and a dense sweep.
    fn inputs() -> Vec<f32> {
        let mut v = vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE, -f32::MIN_POSITIVE];
        v.extend([1e-40, -1e-40, 88.72, 88.73, -103.6, -103.7, 0.346_573_6, -0.346_573_6, 13.3, -13.3, 9.4, -9.4]);
        v.extend([f32::MAX, f32::MIN, 3e9, -3e9, 200.0, -200.0]);
        v.extend((-200_000..200_000).map(|i| i as f32 * 1e-4));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        v.extend((0..100_000).map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            f32::from_bits((state >> 32) as u32)
        }));
        v.truncate(v.len() / 8 * 8);
        v
    }

    #[test]
    fn avx2_matches_wide_bit_for_bit() {
        if !avx2::available() {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        }
        let u = inputs();
        let dh: Vec<f32> = u.iter().enumerate().map(|(i, _)| 1.0 - (i % 7) as f32 * 0.3).collect();
        for a in [Activation::Gelu, Activation::GeluTanh, Activation::QuickGelu] {
            let (mut wide_h, mut avx_h) = (vec![0.0; u.len()], vec![0.0; u.len()]);
            forward_lanes::<f32x8>(&u, a, &mut wide_h);
            // SAFETY: AVX2 is available (checked above).
            unsafe { avx2::forward(&u, a, &mut avx_h) };
            let (mut wide_d, mut avx_d) = (vec![0.0; u.len()], vec![0.0; u.len()]);
            backward_lanes::<f32x8>(&dh, &u, a, &mut wide_d);
            // SAFETY: as above.
            unsafe { avx2::backward(&dh, &u, a, &mut avx_d) };
            for (what, x, y) in [("forward", &wide_h, &avx_h), ("backward", &wide_d, &avx_d)] {
                // NaN results are NaN on both paths; their payloads may
                // differ (which operand's NaN an SSE or AVX op passes on).
                let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                let differ: Vec<_> = (0..u.len()).filter(|&i| !same(x[i], y[i])).collect();
                assert!(
                    differ.is_empty(),
                    "{a:?} {what}: {} of {} lanes differ, first at u = {:e}: wide {:e}, AVX2 {:e}",
                    differ.len(),
                    u.len(),
                    u[differ[0]],
                    x[differ[0]],
                    y[differ[0]]
                );
            }
        }
    }
}
