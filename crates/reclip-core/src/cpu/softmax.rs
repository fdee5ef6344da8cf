use super::reduce::ReduceShape;
use crate::Real;
use rayon::prelude::*;

/// Softmax (or log-softmax) over the middle dimension of [outer, n, inner].
pub fn softmax<T: Real>(x: &[T], s: ReduceShape, log: bool) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    let block = s.n * s.inner;
    if block == 0 {
        return out;
    }
    let run = |o: usize, dst: &mut [T]| {
        let src = &x[o * block..][..block];
        for i in 0..s.inner {
            let mut m = T::neg_infinity();
            for j in 0..s.n {
                m = m.max(src[j * s.inner + i]);
            }
            let mut sum = T::zero();
            for j in 0..s.n {
                let e = (src[j * s.inner + i] - m).exp();
                dst[j * s.inner + i] = e;
                sum += e;
            }
            if log {
                let lse = m + sum.ln();
                for j in 0..s.n {
                    dst[j * s.inner + i] = src[j * s.inner + i] - lse;
                }
            } else {
                let r = sum.recip();
                for j in 0..s.n {
                    dst[j * s.inner + i] *= r;
                }
            }
        }
    };
    if x.len() >= 1 << 15 {
        out.par_chunks_mut(block).enumerate().for_each(|(o, d)| run(o, d));
    } else {
        out.chunks_mut(block).enumerate().for_each(|(o, d)| run(o, d));
    }
    out
}
