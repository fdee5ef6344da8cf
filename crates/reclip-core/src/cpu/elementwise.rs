use super::PAR_CHUNK;
use crate::{Layout, Real, Shape};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "maximum",
            BinaryOp::Min => "minimum",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Recip,
    Sqr,
    Tanh,
    Sigmoid,
    Relu,
    Abs,
    /// 1 where x > 0, else 0: the derivative of relu.
    Step,
    /// -1, 0 or 1: the derivative of abs.
    Sign,
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Recip => "recip",
            UnaryOp::Sqr => "sqr",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Abs => "abs",
            UnaryOp::Step => "step",
            UnaryOp::Sign => "sign",
        }
    }

    pub fn apply<T: Real>(self, x: T) -> T {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Recip => x.recip(),
            UnaryOp::Sqr => x * x,
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => T::one() / (T::one() + (-x).exp()),
            UnaryOp::Relu => x.max(T::zero()),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Step => {
                if x > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            UnaryOp::Sign => {
                if x > T::zero() {
                    T::one()
                } else if x < T::zero() {
                    -T::one()
                } else {
                    T::zero()
                }
            }
        }
    }
}

fn map_slice<T: Real>(out: &mut [T], f: impl Fn(usize) -> T + Sync) {
    if out.len() >= 2 * PAR_CHUNK {
        out.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(c, chunk)| {
            let base = c * PAR_CHUNK;
            for (i, o) in chunk.iter_mut().enumerate() {
                *o = f(base + i);
            }
        });
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            *o = f(i);
        }
    }
}

/// out[i] = f(x[i]) over slices of one length: a loop over zipped slices
/// (no index arithmetic, no bounds checks), which the compiler keeps in SIMD
/// lanes where `f` allows.
fn map_into<T: Real>(out: &mut [T], x: &[T], f: impl Fn(T) -> T + Sync) {
    let apply = |(o, x): (&mut [T], &[T])| o.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x));
    if out.len() >= 2 * PAR_CHUNK {
        out.par_chunks_mut(PAR_CHUNK).zip(x.par_chunks(PAR_CHUNK)).for_each(apply);
    } else {
        apply((out, x));
    }
}

/// out[i] = f(a[i], b[i]) over slices of one length, as [`map_into`].
fn zip_into<T: Real>(out: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) {
    let apply = |((o, a), b): ((&mut [T], &[T]), &[T])| {
        o.iter_mut().zip(a).zip(b).for_each(|((o, &x), &y)| *o = f(x, y));
    };
    if out.len() >= 2 * PAR_CHUNK {
        out.par_chunks_mut(PAR_CHUNK).zip(a.par_chunks(PAR_CHUNK)).zip(b.par_chunks(PAR_CHUNK)).for_each(apply);
    } else {
        apply(((out, a), b));
    }
}

fn binary_with<T: Real>(
    f: impl Fn(T, T) -> T + Sync,
    a: &[T],
    a_shape: &Shape,
    b: &[T],
    b_shape: &Shape,
    out_shape: &Shape,
) -> Vec<T> {
    let n = out_shape.elem_count();
    let mut out = vec![T::zero(); n];
    if a_shape == out_shape && b_shape == out_shape {
        zip_into(&mut out, a, b, f);
    } else if b.len() == 1 && a.len() == n {
        let s = b[0];
        map_into(&mut out, a, |x| f(x, s));
    } else if a.len() == 1 && b.len() == n {
        let s = a[0];
        map_into(&mut out, b, |y| f(s, y));
    } else if a_shape == out_shape && out_shape.dims().ends_with(b_shape.dims()) {
        // A row vector (e.g. a bias) repeated over the leading dimensions.
        let m = b.len();
        map_slice(&mut out, |i| f(a[i], b[i % m]));
    } else {
        let ao = Layout::contiguous(a_shape.clone()).broadcast_to(out_shape).offsets();
        let bo = Layout::contiguous(b_shape.clone()).broadcast_to(out_shape).offsets();
        map_slice(&mut out, |i| f(a[ao[i]], b[bo[i]]));
    }
    out
}

/// `op` applied elementwise to `a` and `b` broadcast to `out_shape`; both
/// inputs are contiguous data of their own shapes.
pub fn binary<T: Real>(op: BinaryOp, a: &[T], a_shape: &Shape, b: &[T], b_shape: &Shape, out_shape: &Shape) -> Vec<T> {
    match op {
        BinaryOp::Add => binary_with(|x, y| x + y, a, a_shape, b, b_shape, out_shape),
        BinaryOp::Sub => binary_with(|x, y| x - y, a, a_shape, b, b_shape, out_shape),
        BinaryOp::Mul => binary_with(|x, y| x * y, a, a_shape, b, b_shape, out_shape),
        BinaryOp::Div => binary_with(|x, y| x / y, a, a_shape, b, b_shape, out_shape),
        BinaryOp::Max => binary_with(|x, y| x.max(y), a, a_shape, b, b_shape, out_shape),
        BinaryOp::Min => binary_with(|x, y| x.min(y), a, a_shape, b, b_shape, out_shape),
    }
}

pub fn unary<T: Real>(op: UnaryOp, x: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    map_into(&mut out, x, |x| op.apply(x));
    out
}

/// `x * mul + add`.
pub fn affine<T: Real>(x: &[T], mul: T, add: T) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    map_into(&mut out, x, |x| x * mul + add);
    out
}

pub fn powf<T: Real>(x: &[T], e: T) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    map_into(&mut out, x, |x| x.powf(e));
    out
}
