//! GELU's tanh approximation, PyTorch's `GELU(approximate='tanh')` and JAX's
//! default `nn.gelu`: ½u(1 + tanh(√(2/π)(u + 0.044715u³))). It is the GELU
//! cuBLASLt's GELU epilogues compute, so the emulator's GEMM (which models
//! them) and the MLP's CPU reference share these formulas. Written with
//! ½(1 + tanh y) = σ(2y), which needs only exp (vectorised CPU paths have
//! no tanh), and saturates cleanly: σ = 0 or 1 far out, never inf/inf.

use crate::{Element, Real};

/// √(2/π), the approximation's scale.
pub const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic term's coefficient.
pub const CUBIC: f64 = 0.044_715;

fn c<T: Real>(v: f64) -> T {
    <T as Element>::from_f64(v)
}

/// σ(2y) for y = √(2/π)(u + 0.044715u³), i.e. ½(1 + tanh y).
fn half_one_plus_tanh<T: Real>(u: T) -> T {
    let y2 = c::<T>(2.0 * SQRT_2_OVER_PI) * (u + c::<T>(CUBIC) * u * u * u);
    T::one() / (T::one() + (-y2).exp())
}

/// u·σ(2y).
pub fn gelu_tanh<T: Real>(u: T) -> T {
    u * half_one_plus_tanh(u)
}

/// d/du of [`gelu_tanh`]: s + u·s(1 − s)·2√(2/π)(1 + 3·0.044715u²), s = σ(2y).
pub fn gelu_tanh_derivative<T: Real>(u: T) -> T {
    let s = half_one_plus_tanh(u);
    let dy2 = c::<T>(2.0 * SQRT_2_OVER_PI) * (T::one() + c::<T>(3.0 * CUBIC) * u * u);
    s + u * s * (T::one() - s) * dy2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tanh form, in f64, from its definition.
    fn by_definition(u: f64) -> f64 {
        0.5 * u * (1.0 + (SQRT_2_OVER_PI * (u + CUBIC * u * u * u)).tanh())
    }

    #[test]
    fn matches_the_definition_and_its_derivative() {
        for i in -1200..=1200 {
            let u = i as f64 / 100.0;
            assert!((gelu_tanh(u) - by_definition(u)).abs() < 1e-13, "u = {u}");
            let h = 1e-5;
            let numeric = (by_definition(u + h) - by_definition(u - h)) / (2.0 * h);
            assert!((gelu_tanh_derivative(u) - numeric).abs() < 1e-8, "u = {u}");
            // f32 stays within a few ulps of the f64 value, saturated ends included.
            let f = gelu_tanh(u as f32) as f64;
            assert!((f - by_definition(u)).abs() <= 4e-7 * by_definition(u).abs().max(1.0), "u = {u}");
        }
        assert_eq!(gelu_tanh(-1e4f32), 0.0);
        assert_eq!(gelu_tanh(1e4f32), 1e4);
    }
}
