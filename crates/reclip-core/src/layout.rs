use crate::{Error, Result};
use std::fmt;

/// The extent of each dimension, outermost first.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major strides, in elements.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }

    /// Resolves a possibly negative dimension index (-1 is the last).
    pub fn dim_index(&self, op: &'static str, dim: isize) -> Result<usize> {
        let rank = self.rank() as isize;
        let d = if dim < 0 { dim + rank } else { dim };
        if d < 0 || d >= rank {
            return Err(Error::invalid(op, format!("dimension {dim} out of range for shape {self}")));
        }
        Ok(d as usize)
    }

    /// The extent of dimension `dim` (negative counts from the end).
    pub fn dim(&self, dim: isize) -> Result<usize> {
        Ok(self.0[self.dim_index("dim", dim)?])
    }

    /// NumPy broadcasting of two shapes.
    pub fn broadcast(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
        let rank = a.rank().max(b.rank());
        let mut out = vec![0; rank];
        for (i, o) in out.iter_mut().enumerate() {
            let da = dim_from_end(a, rank - 1 - i);
            let db = dim_from_end(b, rank - 1 - i);
            *o = match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => {
                    return Err(Error::ShapeMismatch { op, lhs: a.clone(), rhs: b.clone() });
                }
            };
        }
        Ok(Shape(out))
    }
}

fn dim_from_end(s: &Shape, i: usize) -> usize {
    if i < s.rank() { s.0[s.rank() - 1 - i] } else { 1 }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

/// How a tensor's elements sit in its storage: shape, strides (in elements) and
/// the offset of the first element. Views (transpose, narrow, broadcast) change
/// the layout and share the storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout { shape, strides, offset: 0 }
    }

    /// A layout from its parts; the caller ensures it stays within its storage.
    pub(crate) fn from_parts(shape: Shape, strides: Vec<usize>, offset: usize) -> Self {
        Layout { shape, strides, offset }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    /// True when the elements are in row-major order with no gaps; size-1
    /// dimensions may carry any stride.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.shape.dims().iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    pub fn transpose(&self, a: usize, b: usize) -> Layout {
        let mut l = self.clone();
        l.shape.0.swap(a, b);
        l.strides.swap(a, b);
        l
    }

    pub fn permute(&self, order: &[usize]) -> Layout {
        Layout {
            shape: Shape(order.iter().map(|&i| self.shape.0[i]).collect()),
            strides: order.iter().map(|&i| self.strides[i]).collect(),
            offset: self.offset,
        }
    }

    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Layout {
        let mut l = self.clone();
        l.offset += start * self.strides[dim];
        l.shape.0[dim] = len;
        l
    }

    /// A view of this layout broadcast to `shape` (stride 0 on repeated
    /// dimensions). The caller has checked that the shapes broadcast.
    pub fn broadcast_to(&self, shape: &Shape) -> Layout {
        let rank = shape.rank();
        let extra = rank - self.shape.rank();
        let mut strides = vec![0; rank];
        for i in 0..self.shape.rank() {
            if self.shape.0[i] == shape.0[i + extra] {
                strides[i + extra] = self.strides[i];
            }
        }
        Layout { shape: shape.clone(), strides, offset: self.offset }
    }

    pub fn with_offset(mut self, offset: usize) -> Layout {
        self.offset = offset;
        self
    }

    /// Visits the storage offset of every element in row-major order, calling
    /// `f(out_index, storage_offset)`. The innermost dimension runs as a plain
    /// loop so that the per-element cost is an add.
    pub fn for_each_offset(&self, mut f: impl FnMut(usize, usize)) {
        let dims = self.shape.dims();
        if dims.is_empty() {
            f(0, self.offset);
            return;
        }
        if dims.contains(&0) {
            return;
        }
        let rank = dims.len();
        let inner = dims[rank - 1];
        let inner_stride = self.strides[rank - 1];
        let mut index = vec![0usize; rank - 1];
        let mut base = self.offset;
        let mut out = 0;
        loop {
            for j in 0..inner {
                f(out + j, base + j * inner_stride);
            }
            out += inner;
            // Advance the multi-index over the outer dimensions.
            let mut d = rank - 1;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                index[d] += 1;
                base += self.strides[d];
                if index[d] < dims[d] {
                    break;
                }
                base -= self.strides[d] * dims[d];
                index[d] = 0;
            }
        }
    }

    /// The offsets of `for_each_offset`, collected.
    pub fn offsets(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.shape.elem_count());
        self.for_each_offset(|_, o| v.push(o));
        v
    }

    /// Largest storage index touched, plus one (0 for an empty tensor).
    pub fn storage_extent(&self) -> usize {
        if self.shape.elem_count() == 0 {
            return 0;
        }
        self.offset + self.shape.dims().iter().zip(&self.strides).map(|(&d, &s)| (d - 1) * s).sum::<usize>() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_shapes() {
        let a = Shape::new([3, 1, 5]);
        let b = Shape::new([7, 1]);
        assert_eq!(Shape::broadcast("t", &a, &b).unwrap().dims(), &[3, 7, 5]);
        assert!(Shape::broadcast("t", &Shape::new([3]), &Shape::new([4])).is_err());
    }

    #[test]
    fn offsets_of_transposed_view() {
        let l = Layout::contiguous([2, 3]).transpose(0, 1);
        assert_eq!(l.offsets(), vec![0, 3, 1, 4, 2, 5]);
        assert!(!l.is_contiguous());
        let n = Layout::contiguous([4, 3]).narrow(0, 1, 2);
        assert_eq!(n.offsets(), vec![3, 4, 5, 6, 7, 8]);
        assert!(n.is_contiguous());
        assert_eq!(n.storage_extent(), 9);
    }

    #[test]
    fn broadcast_view_repeats() {
        let l = Layout::contiguous([3]).broadcast_to(&Shape::new([2, 3]));
        assert_eq!(l.offsets(), vec![0, 1, 2, 0, 1, 2]);
    }
}
