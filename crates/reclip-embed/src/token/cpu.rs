//! The token embedding on the CPU, generic over the compute type: f32 for
//! f32 and bf16 tensors (bf16 results rounded once at the end, as the
//! kernels do), f64 for gradient checks.

use rayon::prelude::*;
use reclip_core::Real;

/// out[r] = table[ids[r]] + pos[r % len] over rows of `dim` elements.
pub fn forward<T: Real>(ids: &[u32], table: &[T], pos: &[T], len: usize, dim: usize) -> Vec<T> {
    let mut out = vec![T::zero(); ids.len() * dim];
    if dim == 0 {
        return out;
    }
    out.par_chunks_mut(dim).enumerate().for_each(|(r, dst)| {
        let row = &table[ids[r] as usize * dim..][..dim];
        let p = &pos[(r % len) * dim..][..dim];
        for ((o, &a), &b) in dst.iter_mut().zip(row).zip(p) {
            *o = a + b;
        }
    });
    out
}

/// dtable[v] = Σ grad[r] over the rows r with ids[r] = v, in increasing r
/// (the order the kernel sums in).
pub fn table_backward<T: Real>(grad: &[T], ids: &[u32], vocab: usize, dim: usize) -> Vec<T> {
    let mut out = vec![T::zero(); vocab * dim];
    for (r, &id) in ids.iter().enumerate() {
        let dst = &mut out[id as usize * dim..][..dim];
        for (d, &g) in dst.iter_mut().zip(&grad[r * dim..][..dim]) {
            *d += g;
        }
    }
    out
}
