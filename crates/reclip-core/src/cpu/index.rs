use super::reduce::ReduceShape;
use crate::{Error, Real, Result};
use rayon::prelude::*;

fn check(op: &'static str, ids: &[u32], size: usize) -> Result<()> {
    match ids.iter().find(|&&i| i as usize >= size) {
        Some(&i) => Err(Error::IndexOutOfRange { op, index: i as usize, size }),
        None => Ok(()),
    }
}

/// out[o, i, :] = x[o, ids[i], :] with x viewed as [outer, n, inner].
pub fn index_select<T: Real>(x: &[T], s: ReduceShape, ids: &[u32]) -> Result<Vec<T>> {
    check("index_select", ids, s.n)?;
    let mut out = Vec::with_capacity(s.outer * ids.len() * s.inner);
    for o in 0..s.outer {
        for &id in ids {
            out.extend_from_slice(&x[(o * s.n + id as usize) * s.inner..][..s.inner]);
        }
    }
    Ok(out)
}

/// out = base; out[o, ids[i], :] += src[o, i, :]. Positions are grouped by
/// target row first (a counting sort), so each output row sums its
/// contributions in index order on one thread: results do not depend on the
/// thread count and no two threads write one row.
pub fn index_add<T: Real>(base: &[T], s: ReduceShape, ids: &[u32], src: &[T]) -> Result<Vec<T>> {
    check("index_add", ids, s.n)?;
    let mut out = base.to_vec();
    if s.inner == 0 {
        return Ok(out);
    }
    let m = ids.len();
    let mut starts = vec![0usize; s.n + 1];
    for &id in ids {
        starts[id as usize + 1] += 1;
    }
    for r in 0..s.n {
        starts[r + 1] += starts[r];
    }
    let mut fill = starts.clone();
    let mut order = vec![0usize; m];
    for (i, &id) in ids.iter().enumerate() {
        order[fill[id as usize]] = i;
        fill[id as usize] += 1;
    }
    let row = |k: usize, dst: &mut [T]| {
        let (o, r) = (k / s.n, k % s.n);
        for &i in &order[starts[r]..starts[r + 1]] {
            for (d, &v) in dst.iter_mut().zip(&src[(o * m + i) * s.inner..][..s.inner]) {
                *d += v;
            }
        }
    };
    if m * s.inner >= 1 << 15 {
        out.par_chunks_mut(s.inner).enumerate().for_each(|(k, d)| row(k, d));
    } else {
        out.chunks_mut(s.inner).enumerate().for_each(|(k, d)| row(k, d));
    }
    Ok(out)
}

/// out[o, j, i] = x[o, index[o, j, i], i]: x is [outer, n, inner], index is
/// [outer, m, inner].
pub fn gather<T: Real>(x: &[T], s: ReduceShape, index: &[u32], m: usize) -> Result<Vec<T>> {
    check("gather", index, s.n)?;
    let mut out = vec![T::zero(); index.len()];
    for o in 0..s.outer {
        for j in 0..m {
            for i in 0..s.inner {
                let k = (o * m + j) * s.inner + i;
                out[k] = x[(o * s.n + index[k] as usize) * s.inner + i];
            }
        }
    }
    Ok(out)
}

/// out = base; out[o, index[o, j, i], i] += src[o, j, i], in index order.
pub fn scatter_add<T: Real>(base: &[T], s: ReduceShape, index: &[u32], src: &[T], m: usize) -> Result<Vec<T>> {
    check("scatter_add", index, s.n)?;
    let mut out = base.to_vec();
    for o in 0..s.outer {
        for j in 0..m {
            for i in 0..s.inner {
                let k = (o * m + j) * s.inner + i;
                out[(o * s.n + index[k] as usize) * s.inner + i] += src[k];
            }
        }
    }
    Ok(out)
}
