//! f32 SIMD lanes for the CPU ops whose loops call exp or erf (the MLP's
//! activations, attention's softmax): loops that call libm's scalar exp do
//! not vectorise, and made GELU a quarter of a CPU training step. An op
//! writes its loop once, generic over [`Lanes`] ([`LaneLoop`]), and [`run`]
//! runs it on the best of three implementations this CPU has, chosen at run
//! time:
//! - [`Path::Avx512`], sixteen lanes (AVX-512F): fused multiply-adds and a
//!   shorter exp, within the same error bounds as `wide`'s, not the same bits;
//! - [`Path::Avx2`], eight lanes in one 256-bit register: the IEEE operations
//!   of `wide`'s SSE2 build, the same bits, NaN payloads aside;
//! - [`Path::Wide`]: `wide`'s f32x8 (two SSE2 halves on x86-64, NEON on
//!   aarch64).
//!
//! The implementations are private to this module, so code elsewhere meets
//! them only as the `V` of [`LaneLoop::run`], which this module calls in a
//! function compiled for the instructions they use.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use std::ops::{Add, Div, Mul, Neg, Sub};
use wide::f32x8;

mod sealed {
    pub trait Sealed {}
}

/// `N` f32 lanes and what the ops need of them.
pub trait Lanes:
    sealed::Sealed
    + Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    const N: usize;
    fn splat(v: f32) -> Self;
    /// The lanes from `s`, which must hold exactly `N` elements.
    fn load(s: &[f32]) -> Self;
    /// The lanes into `s`, which must hold exactly `N` elements.
    fn store(self, s: &mut [f32]);
    fn abs(self) -> Self;
    /// `self·b + c`: one rounding on [`Path::Avx512`], two (a multiply, then
    /// an add) on the paths that are `wide`'s SSE2 operations.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// e^x, as `wide::f32x8::exp` computes it or (AVX-512) within its error.
    fn exp(self) -> Self;
    /// `if_negative` in the lanes where `self` < 0, `otherwise` elsewhere.
    fn where_negative(self, if_negative: Self, otherwise: Self) -> Self;
}

/// A loop over whole groups of `V::N` elements of the slices it holds.
pub trait LaneLoop {
    /// Runs the loop from the start of its slices over as many whole groups
    /// as they hold; returns how many elements it did (the caller finishes
    /// the tail in scalar code).
    fn run<V: Lanes>(&mut self) -> usize;
}

/// An implementation of [`Lanes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Wide,
    Avx2,
    Avx512,
}

impl Path {
    pub const ALL: [Path; 3] = [Path::Wide, Path::Avx2, Path::Avx512];

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            Path::Wide => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest path this CPU has.
    pub fn best() -> Path {
        static BEST: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Path::ALL.into_iter().rev().find(|p| p.available()).unwrap_or(Path::Wide))
    }
}

/// Runs `l` on [`Path::best`]; returns how many elements it did.
pub fn run<L: LaneLoop>(l: &mut L) -> usize {
    run_on(Path::best(), l)
}

/// Runs `l` on `path`, which must be [`Path::available`] (panics if not).
pub fn run_on<L: LaneLoop>(path: Path, l: &mut L) -> usize {
    assert!(path.available(), "{path:?} lanes on a CPU without them");
    match path {
        Path::Wide => l.run::<f32x8>(),
        // SAFETY: the CPU has the path's instructions (asserted above).
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { avx2::run(l) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { avx512::run(l) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("not available off x86-64"),
    }
}

impl sealed::Sealed for f32x8 {}

impl Lanes for f32x8 {
    const N: usize = 8;
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
    fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
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

/// xs[i] = e^(xs[i] − shift), as softmax needs: in lanes for f32 (the
/// scalar tail and f64 through `Float::exp`).
pub fn exp_shifted<T: crate::Real>(xs: &mut [T], shift: T) {
    let done = if T::DTYPE == crate::DType::F32 {
        let shift = shift.to_f32().unwrap_or(f32::NAN);
        run(&mut ExpShifted { xs: bytemuck::cast_slice_mut(xs), shift })
    } else {
        0
    };
    xs[done..].iter_mut().for_each(|x| *x = (*x - shift).exp());
}

struct ExpShifted<'a> {
    xs: &'a mut [f32],
    shift: f32,
}

impl LaneLoop for ExpShifted<'_> {
    #[inline(always)]
    fn run<V: Lanes>(&mut self) -> usize {
        let n = self.xs.len() / V::N * V::N;
        let shift = V::splat(self.shift);
        for xv in self.xs[..n].chunks_exact_mut(V::N) {
            (V::load(xv) - shift).exp().store(xv);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// e^x on every path: within 2 ulps of f64's over the normal range (the
    /// Taylor truncation is 6e-9, the rest rounding), ±∞, NaN and underflow
    /// to zero as IEEE's, and subnormal results to within one subnormal ulp
    /// plus 2 ulps of the value.
    #[test]
    fn exp_on_every_path_is_within_two_ulps() {
        let mut x: Vec<f32> = (-1_100_000..900_000).map(|i| i as f32 * 1e-4).collect();
        x.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0, 0.0, 88.8, -110.0, f32::MAX, f32::MIN]);
        for path in Path::ALL.into_iter().filter(|p| p.available()) {
            let mut got = x.clone();
            let done = run_on(path, &mut ExpShifted { xs: &mut got, shift: 0.0 });
            assert_eq!(done, x.len() / path_lanes(path) * path_lanes(path));
            for (&x, &got) in x[..done].iter().zip(&got) {
                let want = f64::from(x).exp();
                let rounded = want as f32;
                if !rounded.is_finite() || rounded == 0.0 {
                    let same = got.to_bits() == rounded.to_bits() || (got.is_nan() && rounded.is_nan());
                    assert!(same, "{path:?}: e^{x} = {got:e}, not {rounded:e}");
                    continue;
                }
                let (ulp, subnormal) = (f64::from(f32::EPSILON) * want, f64::from(f32::from_bits(1)));
                let tolerance = if want < f64::from(f32::MIN_POSITIVE) { subnormal + 2.0 * ulp } else { 2.0 * ulp };
                assert!((f64::from(got) - want).abs() <= tolerance, "{path:?}: e^{x} = {got:e}, not {want:e}");
            }
        }
    }

    fn path_lanes(path: Path) -> usize {
        if path == Path::Avx512 { 16 } else { 8 }
    }

    #[test]
    fn exp_shifted_finishes_the_tail_and_keeps_f64_exact() {
        let mut x: Vec<f32> = (0..37).map(|i| i as f32 * 0.25 - 4.0).collect();
        exp_shifted(&mut x, 1.5);
        for (i, got) in x.iter().enumerate() {
            let want = (f64::from(i as f32 * 0.25 - 4.0) - 1.5).exp();
            assert!((f64::from(*got) - want).abs() <= 2.0 * f64::from(f32::EPSILON) * want, "{i}: {got} vs {want}");
        }
        let mut y: Vec<f64> = (0..5).map(|i| i as f64).collect();
        exp_shifted(&mut y, 2.0);
        assert!(y.iter().enumerate().all(|(i, &v)| v == (i as f64 - 2.0).exp()));
    }
}
