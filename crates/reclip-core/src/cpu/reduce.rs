use crate::Real;
use rayon::prelude::*;

/// Views a contiguous tensor reduced over one dimension as [outer, n, inner].
#[derive(Clone, Copy, Debug)]
pub struct ReduceShape {
    pub outer: usize,
    pub n: usize,
    pub inner: usize,
}

impl ReduceShape {
    pub fn new(dims: &[usize], dim: usize) -> Self {
        ReduceShape { outer: dims[..dim].iter().product(), n: dims[dim], inner: dims[dim + 1..].iter().product() }
    }
}

/// Σ f(j) over j < len, as eight partial sums (j mod 8), added pairwise in
/// a fixed order, plus the tail: the same result whatever the thread count,
/// and a loop the compiler keeps in SIMD lanes.
#[inline(always)]
pub fn lane_sum<T: Real>(len: usize, f: impl Fn(usize) -> T) -> T {
    let mut acc = [T::zero(); 8];
    let whole = len / 8 * 8;
    for base in (0..whole).step_by(8) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(base + l);
        }
    }
    let tail = (whole..len).fold(T::zero(), |s, j| s + f(j));
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    (((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))) + tail
}

/// Sum over the middle dimension: out[o, i] = Σ_j x[o, j, i].
pub fn sum<T: Real>(x: &[T], s: ReduceShape) -> Vec<T> {
    let mut out = vec![T::zero(); s.outer * s.inner];
    let row = |o: usize, dst: &mut [T]| {
        for j in 0..s.n {
            let src = &x[(o * s.n + j) * s.inner..][..s.inner];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d += v;
            }
        }
    };
    if s.inner == 0 {
        return out;
    }
    if s.outer * s.n * s.inner >= 1 << 15 && s.outer > 1 {
        out.par_chunks_mut(s.inner).enumerate().for_each(|(o, dst)| row(o, dst));
    } else {
        out.chunks_mut(s.inner).enumerate().for_each(|(o, dst)| row(o, dst));
    }
    out
}

/// Maximum over the middle dimension and the index of its first occurrence.
pub fn max<T: Real>(x: &[T], s: ReduceShape) -> (Vec<T>, Vec<u32>) {
    let mut out = vec![T::neg_infinity(); s.outer * s.inner];
    let mut arg = vec![0u32; s.outer * s.inner];
    for o in 0..s.outer {
        for j in 0..s.n {
            for i in 0..s.inner {
                let v = x[(o * s.n + j) * s.inner + i];
                let k = o * s.inner + i;
                // NaN propagates: a NaN replaces any value and is never replaced.
                if v > out[k] || (v.is_nan() && !out[k].is_nan()) {
                    out[k] = v;
                    arg[k] = j as u32;
                }
            }
        }
    }
    (out, arg)
}
