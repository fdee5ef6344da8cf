//! Sixteen f32 lanes in one AVX-512 register, for CPUs that have AVX-512F
//! (chosen at run time). Unlike the AVX2 path this one does not copy
//! `wide`'s SSE2 operations: multiply-adds are fused (one rounding), and
//! exp clamps its argument, reduces it with FMAs and scales by 2ⁿ with
//! `vscalefps`, which handles overflow and subnormal results itself, where
//! `wide`'s exp builds 2ⁿ from bits and then patches NaN, ±∞, overflow and
//! underflow with five selects. Half the instructions for twice the lanes;
//! the results differ from the other paths in the last bits, within the
//! same error bounds (the MLP's activations and attention test it).

use super::{LaneLoop, Lanes, sealed};
use std::arch::x86_64::*;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// Runs `l` on sixteen AVX-512 lanes.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn run<L: LaneLoop>(l: &mut L) -> usize {
    l.run::<F32x16>()
}

#[derive(Clone, Copy)]
pub(super) struct F32x16(__m512);

impl sealed::Sealed for F32x16 {}

// SAFETY (every intrinsic below): no F32x16 exists outside `run` above,
// which callers may run only where the CPU has AVX-512F; these methods are
// inlined there.
impl Lanes for F32x16 {
    const N: usize = 16;
    #[inline(always)]
    fn splat(v: f32) -> Self {
        F32x16(unsafe { _mm512_set1_ps(v) })
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        assert!(s.len() == 16, "chunks of sixteen");
        // SAFETY: sixteen readable f32s (checked); unaligned load.
        F32x16(unsafe { _mm512_loadu_ps(s.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        assert!(s.len() == 16, "chunks of sixteen");
        // SAFETY: sixteen writable f32s (checked); unaligned store.
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn abs(self) -> Self {
        F32x16(unsafe { _mm512_abs_ps(self.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        F32x16(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    /// e^x = 2ⁿ·e^r with n = round(x·log₂e), r = x − n·ln2 (ln 2 in two
    /// parts, each product fused), e^r by its degree-7 Taylor polynomial
    /// (|r| ≤ ln2/2: truncation below 6e-9 relative). x is first clamped to
    /// [−104, 89], past which e^x rounds to 0 or overflows to ∞ anyway, so
    /// ±∞ need no special case; NaN passes through the clamp (`vmaxps` and
    /// `vminps` return their second operand when one is NaN).
    #[inline(always)]
    fn exp(self) -> Self {
        unsafe {
            let x = _mm512_min_ps(_mm512_set1_ps(89.0), _mm512_max_ps(_mm512_set1_ps(-104.0), self.0));
            let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
                x,
                _mm512_set1_ps(std::f32::consts::LOG2_E),
            ));
            let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
            let r = F32x16(_mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r));
            let [p0, p1, p2, p3, p4, p5] =
                [1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0].map(Self::splat);
            let q = r.mul_add(r.mul_add(r.mul_add(r.mul_add(r.mul_add(p5, p4), p3), p2), p1), p0);
            let z = q.mul_add(r * r, r) + Self::splat(1.0);
            F32x16(_mm512_scalef_ps(z.0, n))
        }
    }
    #[inline(always)]
    fn where_negative(self, if_negative: Self, otherwise: Self) -> Self {
        unsafe {
            let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, _mm512_setzero_ps());
            F32x16(_mm512_mask_blend_ps(negative, otherwise.0, if_negative.0))
        }
    }
}

macro_rules! binary {
    ($trait:ident, $method:ident, $intrinsic:ident) => {
        impl $trait for F32x16 {
            type Output = F32x16;
            #[inline(always)]
            fn $method(self, o: F32x16) -> F32x16 {
                F32x16(unsafe { $intrinsic(self.0, o.0) })
            }
        }
    };
}
binary!(Add, add, _mm512_add_ps);
binary!(Sub, sub, _mm512_sub_ps);
binary!(Mul, mul, _mm512_mul_ps);
binary!(Div, div, _mm512_div_ps);

impl Neg for F32x16 {
    type Output = F32x16;
    #[inline(always)]
    fn neg(self) -> F32x16 {
        let sign = unsafe { _mm512_set1_epi32(i32::MIN) };
        F32x16(unsafe { _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(self.0), sign)) })
    }
}
