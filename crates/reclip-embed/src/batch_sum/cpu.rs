//! The batch sum on the CPU, generic over the compute type.

use rayon::prelude::*;
use reclip_core::Real;
use reclip_core::cpu::PAR_CHUNK;

/// Σ_b x[b·row_len..(b+1)·row_len], zero-padded to `out_len`.
pub fn sum<T: Real>(x: &[T], row_len: usize, out_len: usize) -> Vec<T> {
    let mut out = vec![T::zero(); out_len];
    if row_len == 0 {
        return out;
    }
    let batch = x.len() / row_len;
    out[..row_len].par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(c, dst)| {
        let start = c * PAR_CHUNK;
        for b in 0..batch {
            for (d, &v) in dst.iter_mut().zip(&x[b * row_len + start..]) {
                *d += v;
            }
        }
    });
    out
}
