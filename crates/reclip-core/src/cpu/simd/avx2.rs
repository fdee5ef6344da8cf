//! Eight f32 lanes in one AVX2 register, for CPUs that have it (chosen at
//! run time: the binary still runs on x86-64 CPUs without AVX2).
//!
//! Every operation is the IEEE operation `wide`'s SSE2 build performs on its
//! two halves, in the same order, so a loop gives the same bits on either
//! path: no FMA (wide's `mul_add` is a multiply then an add without
//! the `fma` target feature), and exp's range reduction rounds through
//! `cvtps2dq` as wide's SSE2 `round_ties_even` does (which differs from
//! `vroundps` only in the sign of a zero, and keeps values past i32's range).

use super::{LaneLoop, Lanes, sealed};
use std::arch::x86_64::*;
use std::ops::{Add, BitAnd, Div, Mul, Neg, Sub};

/// Runs `l` on eight AVX2 lanes.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn run<L: LaneLoop>(l: &mut L) -> usize {
    l.run::<F32x8>()
}

/// Eight f32 lanes, or eight lane masks (all ones or all zeros).
#[derive(Clone, Copy)]
pub(super) struct F32x8(__m256);

impl sealed::Sealed for F32x8 {}

// SAFETY (every intrinsic below): no F32x8 exists outside `run` above,
// which callers may run only where the CPU has AVX2; these methods are
// inlined there.
impl F32x8 {
    #[inline(always)]
    fn bits(v: u32) -> Self {
        F32x8(unsafe { _mm256_castsi256_ps(_mm256_set1_epi32(v as i32)) })
    }
    #[inline(always)]
    fn as_i32(self) -> __m256i {
        unsafe { _mm256_castps_si256(self.0) }
    }
    #[inline(always)]
    fn from_i32(v: __m256i) -> Self {
        F32x8(unsafe { _mm256_castsi256_ps(v) })
    }
    #[inline(always)]
    fn lt(self, o: Self) -> Self {
        F32x8(unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn gt(self, o: Self) -> Self {
        F32x8(unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn ge(self, o: Self) -> Self {
        F32x8(unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn is_nan(self) -> Self {
        F32x8(unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0) })
    }
    /// Lanes whose exponent bits are not all ones.
    #[inline(always)]
    fn is_finite(self) -> Self {
        unsafe {
            let exponent = _mm256_set1_epi32(0xFF00_0000u32 as i32);
            let shifted = _mm256_and_si256(_mm256_slli_epi32::<1>(self.as_i32()), exponent);
            Self::from_i32(_mm256_cmpeq_epi32(shifted, exponent)).not()
        }
    }
    #[inline(always)]
    fn is_sign_negative(self) -> Self {
        unsafe {
            let sign = _mm256_set1_epi32(0x8000_0000u32 as i32);
            Self::from_i32(_mm256_cmpeq_epi32(_mm256_and_si256(self.as_i32(), sign), sign))
        }
    }
    #[inline(always)]
    fn not(self) -> Self {
        F32x8(unsafe { _mm256_xor_ps(self.0, Self::bits(u32::MAX).0) })
    }
    /// `a` where the mask is set, `b` elsewhere.
    #[inline(always)]
    fn select(self, a: Self, b: Self) -> Self {
        F32x8(unsafe { _mm256_blendv_ps(b.0, a.0, self.0) })
    }
    #[inline(always)]
    fn all(self) -> bool {
        unsafe { _mm256_movemask_ps(self.0) == 0xFF }
    }
    #[inline(always)]
    fn any(self) -> bool {
        unsafe { _mm256_movemask_ps(self.0) != 0 }
    }
    /// Round to nearest even through an i32 conversion; lanes out of i32's
    /// range (the conversion's 0x80000000) keep their value.
    #[inline(always)]
    fn round_ties_even(self) -> Self {
        unsafe {
            let i = _mm256_cvtps_epi32(self.0);
            let rounded = F32x8(_mm256_cvtepi32_ps(i));
            let out_of_range = Self::from_i32(_mm256_cmpeq_epi32(i, _mm256_set1_epi32(i32::MIN)));
            out_of_range.select(self, rounded)
        }
    }
    /// 2ⁿ for integral n, by building the exponent bits; subnormal results
    /// (−149 ≤ n < −126) from a shifted mantissa bit, 0 below.
    #[inline(always)]
    fn pow2n(self) -> Self {
        unsafe {
            let biased = self + Self::splat(127.0 + 8_388_608.0);
            let normal = Self::from_i32(_mm256_slli_epi32::<23>(biased.as_i32()));
            let subnormal = self.lt(Self::splat(-126.0));
            if !subnormal.any() {
                return normal;
            }
            let valid = self.ge(Self::splat(-149.0));
            let shift = _mm256_cvttps_epi32((self + Self::splat(149.0)).0);
            let shift = _mm256_and_si256(shift, valid.as_i32());
            let mantissa = Self::from_i32(_mm256_sllv_epi32(_mm256_set1_epi32(1), shift));
            subnormal.select(valid.select(mantissa, Self::splat(0.0)), normal)
        }
    }
}

impl Lanes for F32x8 {
    const N: usize = 8;
    #[inline(always)]
    fn splat(v: f32) -> Self {
        F32x8(unsafe { _mm256_set1_ps(v) })
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        assert!(s.len() == 8, "chunks of eight");
        // SAFETY: eight readable f32s (checked); unaligned load.
        F32x8(unsafe { _mm256_loadu_ps(s.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        assert!(s.len() == 8, "chunks of eight");
        // SAFETY: eight writable f32s (checked); unaligned store.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn abs(self) -> Self {
        self & Self::bits(i32::MAX as u32)
    }
    /// `self·b + c` as two roundings, as wide's `mul_add` without FMA.
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
    }
    /// e^x: x = r·ln2 + f with r = round(x·log₂e) (ln 2 split in two parts),
    /// e^f by its degree-7 Taylor polynomial, times 2^r (in two factors
    /// when r passes 127); NaN, ±∞, overflow past 88.723 and underflow
    /// below −103.63 set last.
    #[inline(always)]
    fn exp(self) -> Self {
        let [p0, p1, p2, p3, p4, p5] =
            [1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0].map(Self::splat);
        let (ln2_hi, ln2_lo) = (Self::splat(0.693_359_4), Self::splat(-2.121_944_4e-4));
        let (zero, one, infinity) = (Self::splat(0.0), Self::splat(1.0), Self::splat(f32::INFINITY));
        let finite = self.is_finite();
        let underflow = self.lt(Self::splat(-103.63)) & finite;
        if underflow.all() {
            return zero;
        }
        let max_r = Self::splat(127.0);
        let r = (self * Self::splat(std::f32::consts::LOG2_E)).round_ties_even();
        let big = r.gt(max_r);
        let r_safe = big.select(max_r, r);
        let scale = big.select(r - max_r, zero).pow2n();
        let x = self - r * ln2_hi;
        let x = x - r * ln2_lo;
        let x2 = x * x;
        let x4 = x2 * x2;
        let poly = p3.mul_add(x, p2).mul_add(x2, p5.mul_add(x, p4).mul_add(x4, p1.mul_add(x, p0)));
        let z = (poly.mul_add(x2, x) + one) * scale * r_safe.pow2n();
        let nan = self.is_nan();
        let mut result = nan.select(Self::bits(0x7FC0_0101), z);
        result = (self.gt(Self::splat(88.723)) & finite).select(infinity, result);
        result = underflow.select(zero, result);
        let (infinite, negative) = (finite.not() & nan.not(), self.is_sign_negative());
        result = (infinite & negative.not()).select(infinity, result);
        (infinite & negative).select(zero, result)
    }
    #[inline(always)]
    fn where_negative(self, if_negative: Self, otherwise: Self) -> Self {
        self.lt(Self::splat(0.0)).select(if_negative, otherwise)
    }
}

macro_rules! binary {
    ($trait:ident, $method:ident, $intrinsic:ident) => {
        impl $trait for F32x8 {
            type Output = F32x8;
            #[inline(always)]
            fn $method(self, o: F32x8) -> F32x8 {
                F32x8(unsafe { $intrinsic(self.0, o.0) })
            }
        }
    };
}
binary!(Add, add, _mm256_add_ps);
binary!(Sub, sub, _mm256_sub_ps);
binary!(Mul, mul, _mm256_mul_ps);
binary!(Div, div, _mm256_div_ps);
binary!(BitAnd, bitand, _mm256_and_ps);

impl Neg for F32x8 {
    type Output = F32x8;
    #[inline(always)]
    fn neg(self) -> F32x8 {
        F32x8(unsafe { _mm256_xor_ps(self.0, Self::bits(0x8000_0000).0) })
    }
}
