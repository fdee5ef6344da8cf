//! The CPU path, generic over the compute type (f32 for f32 and bf16 tensors,
//! f64 for the gradient check). Each (batch, head) pair is one rayon task; its
//! matrix products go through the `gemm` crate (reclip-core's strided GEMM),
//! reading Q, K and V in place from the packed qkv rows.

use crate::AttentionShape;
use rayon::prelude::*;
use reclip_core::Real;
use reclip_core::cpu::gemm::{HostMatrix, gemm_strided};
use reclip_core::cpu::simd::exp_shifted;

/// Rows `len` of one head: row i at `base + i·row_stride`, columns contiguous.
struct HeadRows<'a, T> {
    data: &'a [T],
    base: usize,
    row_stride: usize,
}

impl<T: Real> HeadRows<'_, T> {
    /// The rows as an untransposed (len × head_width) GEMM operand.
    fn matrix(&self) -> HostMatrix<T> {
        HostMatrix { ptr: self.data[self.base..].as_ptr(), rs: self.row_stride as isize, cs: 1 }
    }

    /// The rows transposed: (head_width × len).
    fn transposed(&self) -> HostMatrix<T> {
        HostMatrix { ptr: self.data[self.base..].as_ptr(), rs: 1, cs: self.row_stride as isize }
    }

    fn row(&self, i: usize, head_width: usize) -> &[T] {
        &self.data[self.base + i * self.row_stride..][..head_width]
    }
}

/// A dense row-major matrix as a GEMM operand, plain or transposed.
fn dense<T>(data: &[T], cols: usize, transposed: bool) -> HostMatrix<T> {
    let (rs, cs) = if transposed { (1, cols as isize) } else { (cols as isize, 1) };
    HostMatrix { ptr: data.as_ptr(), rs, cs }
}

/// `m × n` result of `scale · a · b` with inner dimension `k`.
fn product<T: Real>(m: usize, n: usize, k: usize, a: HostMatrix<T>, b: HostMatrix<T>, scale: T) -> Vec<T> {
    let mut out = vec![T::zero(); m * n];
    if m * n > 0 {
        // SAFETY: the operands were built from slices that hold every element
        // their strides address for these m, n, k (checked by the callers'
        // shapes); `out` holds m·n elements and aliases neither.
        unsafe { gemm_strided(m, n, k, out.as_mut_ptr(), n as isize, 1, a, b, scale, false, false) };
    }
    out
}

struct Pair {
    batch: usize,
    head: usize,
}

impl AttentionShape {
    fn pair(&self, p: usize) -> Pair {
        Pair { batch: p / self.heads, head: p % self.heads }
    }

    /// Part `part` (0 = q, 1 = k, 2 = v) of the pair's rows in packed qkv.
    fn qkv_rows<'a, T>(&self, qkv: &'a [T], pair: &Pair, part: usize) -> HeadRows<'a, T> {
        let w = self.width();
        HeadRows {
            data: qkv,
            base: pair.batch * self.len * 3 * w + part * w + pair.head * self.head_width,
            row_stride: 3 * w,
        }
    }

    /// The pair's rows in a `[batch, len, width]` tensor.
    fn out_rows<'a, T>(&self, data: &'a [T], pair: &Pair) -> HeadRows<'a, T> {
        let w = self.width();
        HeadRows { data, base: pair.batch * self.len * w + pair.head * self.head_width, row_stride: w }
    }

    fn scale<T: Real>(&self) -> T {
        T::from_f64(1.0 / (self.head_width as f64).sqrt())
    }

    /// Number of keys query `i` attends to.
    fn keys(&self, i: usize, causal: bool) -> usize {
        if causal { i + 1 } else { self.len }
    }
}

/// Softmax of each row of the scaled scores `s` (len × len) in place, keys
/// past the causal limit set to zero; returns each row's logsumexp.
fn softmax_rows<T: Real>(s: &mut [T], shape: &AttentionShape, causal: bool) -> Vec<T> {
    let len = shape.len;
    let mut lse = Vec::with_capacity(len);
    for (i, row) in s.chunks_mut(len.max(1)).take(len).enumerate() {
        let (live, masked) = row.split_at_mut(shape.keys(i, causal));
        let m = live.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
        exp_shifted(live, m);
        let sum = live.iter().fold(T::zero(), |s, &v| s + v);
        let r = sum.recip();
        live.iter_mut().for_each(|v| *v *= r);
        masked.iter_mut().for_each(|v| *v = T::zero());
        lse.push(m + sum.ln());
    }
    lse
}

/// Writes each pair's `len × head_width` block (`block(pair)`) into its
/// head's columns of a tensor whose rows are `row_stride` apart, at column
/// offset `part·width`.
fn scatter<'a, T: Real>(
    dst: &mut [T],
    shape: &AttentionShape,
    row_stride: usize,
    part: usize,
    block: impl Fn(usize) -> &'a [T],
) {
    let (len, hw, w) = (shape.len, shape.head_width, shape.width());
    for p in 0..shape.pairs() {
        let (pair, block) = (shape.pair(p), block(p));
        for i in 0..len {
            let at = (pair.batch * len + i) * row_stride + part * w + pair.head * hw;
            dst[at..at + hw].copy_from_slice(&block[i * hw..][..hw]);
        }
    }
}

/// Output `[batch, len, width]` and logsumexp `[batch, heads, len]`.
pub fn forward<T: Real>(qkv: &[T], shape: &AttentionShape, causal: bool) -> (Vec<T>, Vec<T>) {
    let (len, hw) = (shape.len, shape.head_width);
    let mut out = vec![T::zero(); shape.batch * len * shape.width()];
    if len == 0 {
        return (out, Vec::new());
    }
    let per_pair: Vec<(Vec<T>, Vec<T>)> = (0..shape.pairs())
        .into_par_iter()
        .map(|p| {
            let pair = shape.pair(p);
            let (q, k, v) =
                (shape.qkv_rows(qkv, &pair, 0), shape.qkv_rows(qkv, &pair, 1), shape.qkv_rows(qkv, &pair, 2));
            let mut s = product(len, len, hw, q.matrix(), k.transposed(), shape.scale());
            let lse = softmax_rows(&mut s, shape, causal);
            (product(len, hw, len, dense(&s, len, false), v.matrix(), T::one()), lse)
        })
        .collect();
    scatter(&mut out, shape, shape.width(), 0, |p| &per_pair[p].0);
    (out, per_pair.into_iter().flat_map(|(_, lse)| lse).collect())
}

/// d(qkv) `[batch, len, 3·width]` from the forward's inputs, output and
/// logsumexp and the output's gradient.
pub fn backward<T: Real>(qkv: &[T], out: &[T], lse: &[T], d_out: &[T], shape: &AttentionShape, causal: bool) -> Vec<T> {
    let (len, hw) = (shape.len, shape.head_width);
    let mut d_qkv = vec![T::zero(); shape.batch * len * 3 * shape.width()];
    if len == 0 {
        return d_qkv;
    }
    let grads: Vec<[Vec<T>; 3]> = (0..shape.pairs())
        .into_par_iter()
        .map(|p| {
            let pair = shape.pair(p);
            let (q, k, v) =
                (shape.qkv_rows(qkv, &pair, 0), shape.qkv_rows(qkv, &pair, 1), shape.qkv_rows(qkv, &pair, 2));
            let (o, d_o) = (shape.out_rows(out, &pair), shape.out_rows(d_out, &pair));
            let lse = &lse[p * len..][..len];
            // P, recomputed from the saved logsumexp.
            let mut prob = product(len, len, hw, q.matrix(), k.transposed(), shape.scale());
            for (i, row) in prob.chunks_mut(len.max(1)).take(len).enumerate() {
                let live = shape.keys(i, causal);
                exp_shifted(&mut row[..live], lse[i]);
                row[live..].iter_mut().for_each(|s| *s = T::zero());
            }
            // dS = P ∘ (dO·Vᵀ − rowsum(dO ∘ O)).
            let mut ds = product(len, len, hw, d_o.matrix(), v.transposed(), T::one());
            for i in 0..len {
                let d: T = o.row(i, hw).iter().zip(d_o.row(i, hw)).map(|(&a, &b)| a * b).sum();
                for j in 0..len {
                    ds[i * len + j] = prob[i * len + j] * (ds[i * len + j] - d);
                }
            }
            let scale = shape.scale();
            let dq = product(len, hw, len, dense(&ds, len, false), k.matrix(), scale);
            let dk = product(len, hw, len, dense(&ds, len, true), q.matrix(), scale);
            let dv = product(len, hw, len, dense(&prob, len, true), d_o.matrix(), T::one());
            [dq, dk, dv]
        })
        .collect();
    // Part 0 is dQ, 1 dK, 2 dV: the same order as q | k | v in qkv.
    (0..3).for_each(|part| scatter(&mut d_qkv, shape, 3 * shape.width(), part, |p| &grads[p][part]));
    d_qkv
}
