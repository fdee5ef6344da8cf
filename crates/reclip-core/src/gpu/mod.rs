//! GPU paths of the core ops: kernel launches built here run on any
//! [`crate::KernelBackend`].

use crate::cpu::reduce::ReduceShape;
use crate::ops::matmul::MatmulShape;
use crate::ops::{BinaryOp, UnaryOp};
use crate::{DType, Error, Result, Shape, Tensor};

fn missing(op: &'static str, t: &Tensor) -> Error {
    Error::NotOnDevice { op, device: t.device().name() }
}

pub fn strided_copy(t: &Tensor) -> Result<Tensor> {
    Err(missing("strided_copy", t))
}
pub fn copy_into(src: &Tensor, _dst: &Tensor) -> Result<()> {
    Err(missing("copy_into", src))
}
pub fn cast(t: &Tensor, _dtype: DType) -> Result<Tensor> {
    Err(missing("cast", t))
}
pub fn binary(_op: BinaryOp, a: &Tensor, _b: &Tensor, _out: &Shape) -> Result<Tensor> {
    Err(missing("binary", a))
}
pub fn unary(_op: UnaryOp, t: &Tensor) -> Result<Tensor> {
    Err(missing("unary", t))
}
pub fn affine(t: &Tensor, _mul: f32, _add: f32) -> Result<Tensor> {
    Err(missing("affine", t))
}
pub fn powf(t: &Tensor, _e: f32) -> Result<Tensor> {
    Err(missing("powf", t))
}
pub fn sum(t: &Tensor, _rs: ReduceShape) -> Result<Tensor> {
    Err(missing("sum", t))
}
pub fn max(t: &Tensor, _rs: ReduceShape) -> Result<(Tensor, Tensor)> {
    Err(missing("max", t))
}
pub fn softmax(t: &Tensor, _rs: ReduceShape, _log: bool) -> Result<Tensor> {
    Err(missing("softmax", t))
}
pub fn index_select(t: &Tensor, _rs: ReduceShape, _ids: &Tensor, _dims: Vec<usize>) -> Result<Tensor> {
    Err(missing("index_select", t))
}
pub fn index_add(t: &Tensor, _rs: ReduceShape, _ids: &Tensor, _src: &Tensor) -> Result<Tensor> {
    Err(missing("index_add", t))
}
pub fn gather(t: &Tensor, _rs: ReduceShape, _index: &Tensor, _m: usize) -> Result<Tensor> {
    Err(missing("gather", t))
}
pub fn scatter_add(t: &Tensor, _rs: ReduceShape, _index: &Tensor, _src: &Tensor, _m: usize) -> Result<Tensor> {
    Err(missing("scatter_add", t))
}
pub fn matmul(a: &Tensor, _b: &Tensor, _ms: &MatmulShape) -> Result<Tensor> {
    Err(missing("matmul", a))
}
