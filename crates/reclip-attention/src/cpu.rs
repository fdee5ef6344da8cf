//! The CPU path, generic over the compute type (f32 for f32 and bf16 tensors,
//! f64 for the gradient check). Each (batch, head) pair is one rayon task; its
//! matrix products go through the `gemm` crate (reclip-core's strided GEMM),
//! reading Q, K and V in place from the packed qkv rows and writing each
//! pair's result in place into its head's columns of the output. The scores
//! live in scratch buffers that a rayon task reuses across its pairs: a
//! fresh, zeroed allocation and a copy of each result per pair were a
//! fifth of attention's time at 65 tokens.

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

/// Where parallel tasks write, each to elements no other task touches.
#[derive(Clone, Copy)]
struct Disjoint<T>(*mut T);

// SAFETY: the tasks that share it write disjoint elements (each pair its own
// head's columns) while the buffer it points into outlives them.
unsafe impl<T: Send> Send for Disjoint<T> {}
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    /// The element `offset` past the start (a method, so that closures
    /// capture the whole `Disjoint`, not its bare pointer).
    fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// `dst = scale · a · b`, an `m × n` block whose rows are `rs` apart, with
/// inner dimension `k` (≥ 1).
///
/// # Safety
/// The operands must hold every element their strides address for these
/// m, n, k; `dst` must be valid for the block's elements, which nothing
/// else reads or writes meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn product_into<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    rs: usize,
    a: HostMatrix<T>,
    b: HostMatrix<T>,
    scale: T,
) {
    // SAFETY: forwarded from the caller.
    unsafe { gemm_strided(m, n, k, dst, rs as isize, 1, a, b, scale, false, false) };
}

/// A `len × len` scratch matrix, reused.
fn scores<T: Real>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    buffer.resize(len * len, T::zero());
    buffer
}

struct Pair {
    batch: usize,
    head: usize,
}

impl AttentionShape {
    fn pair(&self, p: usize) -> Pair {
        Pair { batch: p / self.heads, head: p % self.heads }
    }

    /// Where part `part` (0 = q, 1 = k, 2 = v) of the pair's first row is
    /// in packed qkv (rows 3·width apart).
    fn qkv_base(&self, pair: &Pair, part: usize) -> usize {
        let w = self.width();
        pair.batch * self.len * 3 * w + part * w + pair.head * self.head_width
    }

    /// Part `part` of the pair's rows in packed qkv.
    fn qkv_rows<'a, T>(&self, qkv: &'a [T], pair: &Pair, part: usize) -> HeadRows<'a, T> {
        HeadRows { data: qkv, base: self.qkv_base(pair, part), row_stride: 3 * self.width() }
    }

    /// Where the pair's first row is in a `[batch, len, width]` tensor.
    fn out_base(&self, pair: &Pair) -> usize {
        pair.batch * self.len * self.width() + pair.head * self.head_width
    }

    /// The pair's rows in a `[batch, len, width]` tensor.
    fn out_rows<'a, T>(&self, data: &'a [T], pair: &Pair) -> HeadRows<'a, T> {
        HeadRows { data, base: self.out_base(pair), row_stride: self.width() }
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
/// past the causal limit set to zero; each row's logsumexp into `lse`.
fn softmax_rows<T: Real>(s: &mut [T], shape: &AttentionShape, causal: bool, lse: &mut [T]) {
    let len = shape.len;
    for ((i, row), lse) in s.chunks_mut(len.max(1)).take(len).enumerate().zip(lse) {
        let (live, masked) = row.split_at_mut(shape.keys(i, causal));
        let m = live.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
        exp_shifted(live, m);
        let sum = live.iter().fold(T::zero(), |s, &v| s + v);
        let r = sum.recip();
        live.iter_mut().for_each(|v| *v *= r);
        masked.iter_mut().for_each(|v| *v = T::zero());
        *lse = m + sum.ln();
    }
}

/// Output `[batch, len, width]` and logsumexp `[batch, heads, len]`.
pub fn forward<T: Real>(qkv: &[T], shape: &AttentionShape, causal: bool) -> (Vec<T>, Vec<T>) {
    let (len, hw, w) = (shape.len, shape.head_width, shape.width());
    let mut out = vec![T::zero(); shape.batch * len * w];
    let mut lse = vec![T::zero(); shape.pairs() * len];
    if len == 0 {
        return (out, lse);
    }
    let dst = Disjoint(out.as_mut_ptr());
    lse.par_chunks_mut(len).enumerate().for_each_init(Vec::new, |buffer, (p, lse)| {
        let pair = shape.pair(p);
        let (q, k, v) = (shape.qkv_rows(qkv, &pair, 0), shape.qkv_rows(qkv, &pair, 1), shape.qkv_rows(qkv, &pair, 2));
        let s = scores(buffer, len);
        let o = shape.out_base(&pair);
        // SAFETY: q, k and v address the pair's rows of qkv and `s` holds
        // len·len elements; the pair's block of `out` (its rows, its head's
        // columns) is written by this task alone, and `out` outlives it.
        unsafe {
            product_into(len, len, hw, s.as_mut_ptr(), len, q.matrix(), k.transposed(), shape.scale());
            softmax_rows(s, shape, causal, lse);
            product_into(len, hw, len, dst.at(o), w, dense(s, len, false), v.matrix(), T::one());
        }
    });
    (out, lse)
}

/// d(qkv) `[batch, len, 3·width]` from the forward's inputs, output and
/// logsumexp and the output's gradient.
pub fn backward<T: Real>(qkv: &[T], out: &[T], lse: &[T], d_out: &[T], shape: &AttentionShape, causal: bool) -> Vec<T> {
    let (len, hw, w) = (shape.len, shape.head_width, shape.width());
    let mut d_qkv = vec![T::zero(); shape.batch * len * 3 * w];
    if len == 0 {
        return d_qkv;
    }
    let dst = Disjoint(d_qkv.as_mut_ptr());
    (0..shape.pairs()).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(prob_buffer, ds_buffer), p| {
            let pair = shape.pair(p);
            let (q, k, v) =
                (shape.qkv_rows(qkv, &pair, 0), shape.qkv_rows(qkv, &pair, 1), shape.qkv_rows(qkv, &pair, 2));
            let (o, d_o) = (shape.out_rows(out, &pair), shape.out_rows(d_out, &pair));
            let lse = &lse[p * len..][..len];
            let (prob, ds) = (scores(prob_buffer, len), scores(ds_buffer, len));
            // Part 0 of the pair's rows in d(qkv) is dQ, 1 dK, 2 dV: the
            // same order as q | k | v in qkv.
            let d_part = |part: usize| dst.at(shape.qkv_base(&pair, part));
            // SAFETY: the operands address the pair's rows of qkv, out and
            // d_out, and the two scratch matrices hold len·len elements; the
            // pair's blocks of d(qkv) are written by this task alone, and
            // d(qkv) outlives it.
            unsafe {
                // P, recomputed from the saved logsumexp.
                product_into(len, len, hw, prob.as_mut_ptr(), len, q.matrix(), k.transposed(), shape.scale());
                for (i, row) in prob.chunks_mut(len).enumerate() {
                    let live = shape.keys(i, causal);
                    exp_shifted(&mut row[..live], lse[i]);
                    row[live..].iter_mut().for_each(|s| *s = T::zero());
                }
                // dS = P ∘ (dO·Vᵀ − rowsum(dO ∘ O)).
                product_into(len, len, hw, ds.as_mut_ptr(), len, d_o.matrix(), v.transposed(), T::one());
                for (i, (ds, prob)) in ds.chunks_mut(len).zip(prob.chunks(len)).enumerate() {
                    let d: T = o.row(i, hw).iter().zip(d_o.row(i, hw)).map(|(&a, &b)| a * b).sum();
                    ds.iter_mut().zip(prob).for_each(|(s, &p)| *s = p * (*s - d));
                }
                let scale = shape.scale();
                product_into(len, hw, len, d_part(0), 3 * w, dense(ds, len, false), k.matrix(), scale);
                product_into(len, hw, len, d_part(1), 3 * w, dense(ds, len, true), q.matrix(), scale);
                product_into(len, hw, len, d_part(2), 3 * w, dense(prob, len, true), d_o.matrix(), T::one());
            }
        },
    );
    d_qkv
}
