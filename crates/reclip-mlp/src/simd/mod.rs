//! The f32 CPU activations in SIMD lanes: their formulas, written once over
//! reclip-core's [`Lanes`] and run on the widest lanes this CPU has
//! ([`simd::run`]). On AVX-512 the results differ from the other paths in
//! the last bits, within the same error bounds
//! (`tests::avx512_is_as_accurate_as_wide`); the AVX2 and `wide` paths give
//! the same bits (`tests::avx2_matches_wide_bit_for_bit`). The scalar path
//! (`cpu.rs`) uses the same formulas and handles each slice's tail.

use crate::Activation;
use crate::cpu::{activate, derivative};
use reclip_core::cpu::gelu_tanh::{CUBIC, SQRT_2_OVER_PI};
use reclip_core::cpu::simd::{self, LaneLoop, Lanes};

/// Abramowitz & Stegun 7.1.26: erf(x) ≈ 1 − (a₁t + … + a₅t⁵)·e^{−x²}, t = 1/(1 + p·x).
pub(crate) const ERF_P: f32 = 0.327_591_1;
pub(crate) const ERF_A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152, 1.061_405_4];
const QUICK_GELU_SCALE: f32 = 1.702;

/// (erf x, e^{−x²}): GELU's gradient needs the Gaussian the erf
/// approximation computes on the way.
#[inline(always)]
fn erf_and_gaussian<V: Lanes>(x: V) -> (V, V) {
    let ax = x.abs();
    let one = V::splat(1.0);
    let t = one / ax.mul_add(V::splat(ERF_P), one);
    let [a0, a1, a2, a3, a4] = ERF_A.map(V::splat);
    let poly = t * t.mul_add(t.mul_add(t.mul_add(t.mul_add(a4, a3), a2), a1), a0);
    let gaussian = (-(ax * ax)).exp();
    let y = (-poly).mul_add(gaussian, one);
    // erf is odd: give y the sign of x.
    (x.where_negative(-y, y), gaussian)
}

#[inline(always)]
fn sigmoid<V: Lanes>(x: V) -> V {
    V::splat(1.0) / (V::splat(1.0) + (-x).exp())
}

/// σ(2y) for GELU's tanh approximation, y = √(2/π)(u + 0.044715u³).
#[inline(always)]
fn tanh_gate<V: Lanes>(u: V) -> V {
    let scale = V::splat((2.0 * SQRT_2_OVER_PI) as f32);
    sigmoid(scale * (V::splat(CUBIC as f32) * u * u).mul_add(u, u))
}

#[inline(always)]
fn act<V: Lanes>(a: Activation, u: V) -> V {
    match a {
        Activation::GeluTanh => u * tanh_gate(u),
        Activation::Gelu => {
            V::splat(0.5) * u * (V::splat(1.0) + erf_and_gaussian(u * V::splat(std::f32::consts::FRAC_1_SQRT_2)).0)
        }
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
            (u * s * (one - s)).mul_add(slope, s)
        }
        Activation::Gelu => {
            // e^{−x²} at x = u/√2 is e^{−u²/2}: φ(u) needs no second exp.
            let (erf, gaussian) = erf_and_gaussian(u * V::splat(std::f32::consts::FRAC_1_SQRT_2));
            let cdf = V::splat(0.5) * (one + erf);
            let k = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
            u.mul_add(V::splat(k) * gaussian, cdf)
        }
        Activation::QuickGelu => {
            let k = V::splat(QUICK_GELU_SCALE);
            let s = sigmoid(k * u);
            s * (one + k * u * (one - s))
        }
    }
}

/// h = act(u) over whole groups of lanes.
struct Forward<'a> {
    u: &'a [f32],
    a: Activation,
    h: &'a mut [f32],
}

impl LaneLoop for Forward<'_> {
    #[inline(always)]
    fn run<V: Lanes>(&mut self) -> usize {
        let n = self.u.len() / V::N * V::N;
        for (hv, uv) in self.h[..n].chunks_exact_mut(V::N).zip(self.u[..n].chunks_exact(V::N)) {
            act(self.a, V::load(uv)).store(hv);
        }
        n
    }
}

/// du = dh · act'(u) over whole groups of lanes.
struct Backward<'a> {
    dh: &'a [f32],
    u: &'a [f32],
    a: Activation,
    du: &'a mut [f32],
}

impl LaneLoop for Backward<'_> {
    #[inline(always)]
    fn run<V: Lanes>(&mut self) -> usize {
        let n = self.u.len() / V::N * V::N;
        let du = self.du[..n].chunks_exact_mut(V::N);
        for ((dv, gv), uv) in du.zip(self.dh[..n].chunks_exact(V::N)).zip(self.u[..n].chunks_exact(V::N)) {
            (V::load(gv) * grad(self.a, V::load(uv))).store(dv);
        }
        n
    }
}

/// h = act(u).
pub fn forward(u: &[f32], a: Activation, h: &mut [f32]) {
    let n = simd::run(&mut Forward { u, a, h: &mut *h });
    for i in n..u.len() {
        h[i] = activate(a, u[i]);
    }
}

/// du = dh · act'(u).
pub fn backward(dh: &[f32], u: &[f32], a: Activation, du: &mut [f32]) {
    let n = simd::run(&mut Backward { dh, u, a, du: &mut *du });
    for i in n..u.len() {
        du[i] = dh[i] * derivative(a, u[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reclip_core::cpu::simd::{Path, run_on};

    /// (h, du) of every input on one path, lanes only (no scalar tail).
    fn on(path: Path, a: Activation, u: &[f32], dh: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (mut h, mut du) = (vec![0.0; u.len()], vec![0.0; u.len()]);
        assert_eq!(run_on(path, &mut Forward { u, a, h: &mut h }), u.len());
        assert_eq!(run_on(path, &mut Backward { dh, u, a, du: &mut du }), u.len());
        (h, du)
    }

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
        // Whole groups of sixteen, so that every lane of every path is compared.
        v.truncate(v.len() / 16 * 16);
        v
    }

    /// act(u) and act'(u) in f64 (libm's erf), for the error of each path.
    fn exact(a: Activation, u: f64) -> (f64, f64) {
        use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};
        let (tanh_c, quick) = (CUBIC, f64::from(QUICK_GELU_SCALE));
        match a {
            Activation::Gelu => {
                let cdf = 0.5 * (1.0 + libm::erf(u * FRAC_1_SQRT_2));
                let pdf = 0.5 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2 * (-0.5 * u * u).exp();
                (u * cdf, cdf + u * pdf)
            }
            Activation::GeluTanh => {
                let y = SQRT_2_OVER_PI * (u + tanh_c * u * u * u);
                let t = y.tanh();
                let dy = SQRT_2_OVER_PI * (1.0 + 3.0 * tanh_c * u * u);
                (0.5 * u * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * dy)
            }
            Activation::QuickGelu => {
                let s = 1.0 / (1.0 + (-quick * u).exp());
                (u * s, s * (1.0 + quick * u * (1.0 - s)))
            }
        }
    }

    /// Both paths' largest error against f64, each error relative to
    /// |dh|·max(1, |u|) (the size of the terms the formulas add: erf's
    /// error is absolute and GELU multiplies it by u); the AVX-512 path's
    /// may exceed `wide`'s by a quarter (its exp and roundings differ, the
    /// erf approximation is the same) and stays under 5e-7; where `wide`
    /// gives NaN or ±∞, so does it.
    #[test]
    fn avx512_is_as_accurate_as_wide() {
        if !Path::Avx512.available() {
            eprintln!("no AVX-512F on this CPU: nothing to compare");
            return;
        }
        let u = inputs();
        let dh: Vec<f32> = u.iter().enumerate().map(|(i, _)| 1.0 - (i % 7) as f32 * 0.3).collect();
        for a in [Activation::Gelu, Activation::GeluTanh, Activation::QuickGelu] {
            let ((wide_h, wide_d), (fast_h, fast_d)) = (on(Path::Wide, a, &u, &dh), on(Path::Avx512, a, &u, &dh));
            for (what, wide, fast) in [("forward", &wide_h, &fast_h), ("backward", &wide_d, &fast_d)] {
                let mut worst = [(0.0f64, 0.0f32); 2];
                for i in 0..u.len() {
                    let (w, f) = (wide[i], fast[i]);
                    if !w.is_finite() {
                        let same = (w.is_nan() && f.is_nan()) || w == f;
                        assert!(same, "{a:?} {what} at u = {:e}: wide {w:e}, AVX-512 {f:e}", u[i]);
                        continue;
                    }
                    let (h, d) = exact(a, f64::from(u[i]));
                    let (want, g) = if what == "forward" { (h, 1.0) } else { (f64::from(dh[i]) * d, dh[i]) };
                    let scale = f64::from(g.abs()) * f64::from(u[i].abs()).max(1.0);
                    for (k, got) in [w, f].into_iter().enumerate() {
                        let err = (f64::from(got) - want).abs() / scale;
                        if err > worst[k].0 {
                            worst[k] = (err, u[i]);
                        }
                    }
                }
                let [(wide_err, wide_at), (fast_err, fast_at)] = worst;
                eprintln!(
                    "{a:?} {what}: largest error wide {wide_err:.2e} (u = {wide_at}), AVX-512 {fast_err:.2e} (u = {fast_at})"
                );
                assert!(
                    fast_err <= 1.25 * wide_err && fast_err < 5e-7,
                    "{a:?} {what}: AVX-512's error {fast_err:e} (at u = {fast_at}) against wide's {wide_err:e}"
                );
            }
        }
    }

    #[test]
    fn avx2_matches_wide_bit_for_bit() {
        if !Path::Avx2.available() {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        }
        let u = inputs();
        let dh: Vec<f32> = u.iter().enumerate().map(|(i, _)| 1.0 - (i % 7) as f32 * 0.3).collect();
        for a in [Activation::Gelu, Activation::GeluTanh, Activation::QuickGelu] {
            let ((wide_h, wide_d), (avx_h, avx_d)) = (on(Path::Wide, a, &u, &dh), on(Path::Avx2, a, &u, &dh));
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
