//! The f32 CPU activations, eight lanes at a time (`wide`): libm's scalar
//! erf/exp made GELU a quarter of a CPU training step, and loops that call
//! them do not vectorise. The formulas are those of the scalar path
//! (`cpu.rs`), which handles each slice's tail.

use crate::Activation;
use crate::cpu::{activate, derivative};
use reclip_core::cpu::gelu_tanh::{CUBIC, SQRT_2_OVER_PI};
use wide::f32x8;

/// Abramowitz & Stegun 7.1.26: erf(x) ≈ 1 − (a₁t + … + a₅t⁵)·e^{−x²}, t = 1/(1 + p·x).
pub(crate) const ERF_P: f32 = 0.327_591_1;
pub(crate) const ERF_A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152, 1.061_405_4];
const QUICK_GELU_SCALE: f32 = 1.702;

fn erf(x: f32x8) -> f32x8 {
    let ax = x.abs();
    let one = f32x8::ONE;
    let t = one / (one + f32x8::splat(ERF_P) * ax);
    let [a0, a1, a2, a3, a4] = ERF_A.map(f32x8::splat);
    let poly = t * (a0 + t * (a1 + t * (a2 + t * (a3 + t * a4))));
    let y = one - poly * (-(ax * ax)).exp();
    // erf is odd: give y the sign of x.
    x.simd_lt(f32x8::ZERO).select(-y, y)
}

fn sigmoid(x: f32x8) -> f32x8 {
    f32x8::ONE / (f32x8::ONE + (-x).exp())
}

/// σ(2y) for GELU's tanh approximation, y = √(2/π)(u + 0.044715u³).
fn tanh_gate(u: f32x8) -> f32x8 {
    let scale = f32x8::splat((2.0 * SQRT_2_OVER_PI) as f32);
    sigmoid(scale * (u + f32x8::splat(CUBIC as f32) * u * u * u))
}

fn act(a: Activation, u: f32x8) -> f32x8 {
    match a {
        Activation::GeluTanh => u * tanh_gate(u),
        Activation::Gelu => {
            f32x8::splat(0.5) * u * (f32x8::ONE + erf(u * f32x8::splat(std::f32::consts::FRAC_1_SQRT_2)))
        }
        Activation::QuickGelu => u * sigmoid(f32x8::splat(QUICK_GELU_SCALE) * u),
    }
}

fn grad(a: Activation, u: f32x8) -> f32x8 {
    match a {
        Activation::GeluTanh => {
            let s = tanh_gate(u);
            let slope =
                f32x8::splat((2.0 * SQRT_2_OVER_PI) as f32) * (f32x8::ONE + f32x8::splat((3.0 * CUBIC) as f32) * u * u);
            s + u * s * (f32x8::ONE - s) * slope
        }
        Activation::Gelu => {
            let cdf = f32x8::splat(0.5) * (f32x8::ONE + erf(u * f32x8::splat(std::f32::consts::FRAC_1_SQRT_2)));
            let k = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
            let pdf = f32x8::splat(k) * (f32x8::splat(-0.5) * u * u).exp();
            cdf + u * pdf
        }
        Activation::QuickGelu => {
            let k = f32x8::splat(QUICK_GELU_SCALE);
            let s = sigmoid(k * u);
            s * (f32x8::ONE + k * u * (f32x8::ONE - s))
        }
    }
}

fn load(s: &[f32]) -> f32x8 {
    f32x8::new(s.try_into().expect("chunks of eight"))
}

/// h = act(u).
pub fn forward(u: &[f32], a: Activation, h: &mut [f32]) {
    let n = u.len() / 8 * 8;
    for (h8, u8) in h[..n].chunks_exact_mut(8).zip(u[..n].chunks_exact(8)) {
        h8.copy_from_slice(&act(a, load(u8)).to_array());
    }
    for i in n..u.len() {
        h[i] = activate(a, u[i]);
    }
}

/// du = dh · act'(u).
pub fn backward(dh: &[f32], u: &[f32], a: Activation, du: &mut [f32]) {
    let n = u.len() / 8 * 8;
    for ((d8, g8), u8) in du[..n].chunks_exact_mut(8).zip(dh[..n].chunks_exact(8)).zip(u[..n].chunks_exact(8)) {
        d8.copy_from_slice(&(load(g8) * grad(a, load(u8))).to_array());
    }
    for i in n..u.len() {
        du[i] = dh[i] * derivative(a, u[i]);
    }
}
