use super::{THREADS, blocks_for, device_of, map_form};
use crate::ops::{BinaryOp, UnaryOp};
use crate::{KernelArg, KernelLayout, Launch, Result, Shape, Tensor, kernel_name};

/// Op codes of kernels/elementwise.cu.
fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Max => 4,
        BinaryOp::Min => 5,
    }
}

fn unary_code(op: UnaryOp) -> i32 {
    match op {
        UnaryOp::Neg => 0,
        UnaryOp::Exp => 1,
        UnaryOp::Log => 2,
        UnaryOp::Sqrt => 3,
        UnaryOp::Recip => 4,
        UnaryOp::Sqr => 5,
        UnaryOp::Tanh => 6,
        UnaryOp::Sigmoid => 7,
        UnaryOp::Relu => 8,
        UnaryOp::Abs => 9,
        UnaryOp::Step => 10,
        UnaryOp::Sign => 11,
    }
}

pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor, out_shape: &Shape) -> Result<Tensor> {
    let out = Tensor::empty(out_shape.clone(), a.dtype(), a.device())?;
    let n = out.elem_count();
    if n == 0 {
        return Ok(out);
    }
    let g = device_of(a)?;
    if a.shape() == out_shape && b.shape() == out_shape && a.is_contiguous() && b.is_contiguous() {
        let ptrs = [a.gpu_ptr()?, b.gpu_ptr()?, out.gpu_ptr()?];
        let args = [
            KernelArg::I32(binary_code(op)),
            KernelArg::Ptr(ptrs[0]),
            KernelArg::Ptr(ptrs[1]),
            KernelArg::Ptr(ptrs[2]),
            KernelArg::I64(n as i64),
        ];
        let (kernel, blocks) = map_form(
            kernel_name!("binary_same", a.dtype(), op.name())?,
            kernel_name!("binary_same_vec", a.dtype(), op.name())?,
            a.dtype(),
            n,
            &ptrs,
        );
        return g.launch(&Launch::linear(kernel, blocks, THREADS, &args)).map(|_| out);
    }
    let args = [
        KernelArg::I32(binary_code(op)),
        KernelArg::Ptr(a.gpu_ptr()?),
        KernelArg::Layout(KernelLayout::new(&a.layout().broadcast_to(out_shape))?),
        KernelArg::Ptr(b.gpu_ptr()?),
        KernelArg::Layout(KernelLayout::new(&b.layout().broadcast_to(out_shape))?),
        KernelArg::Ptr(out.gpu_ptr()?),
        KernelArg::I64(n as i64),
    ];
    let kernel = kernel_name!("binary_strided", a.dtype(), op.name())?;
    g.launch(&Launch::linear(kernel, blocks_for(n), THREADS, &args)).map(|_| out)
}

/// Launches a one-input map kernel (`kernels`: its scalar and vector forms)
/// over a contiguous copy of `t`, with `extra` arguments after (input,
/// output, n).
fn map(
    kernels: (&'static str, &'static str),
    t: &Tensor,
    leading: &[KernelArg],
    extra: &[KernelArg],
) -> Result<Tensor> {
    let x = t.contiguous()?;
    let out = Tensor::empty(t.shape().clone(), t.dtype(), t.device())?;
    let n = x.elem_count();
    if n > 0 {
        let ptrs = [x.gpu_ptr()?, out.gpu_ptr()?];
        let (kernel, blocks) = map_form(kernels.0, kernels.1, t.dtype(), n, &ptrs);
        let mut args = leading.to_vec();
        args.extend([KernelArg::Ptr(ptrs[0]), KernelArg::Ptr(ptrs[1]), KernelArg::I64(n as i64)]);
        args.extend_from_slice(extra);
        device_of(t)?.launch(&Launch::linear(kernel, blocks, THREADS, &args))?;
    }
    Ok(out)
}

pub fn unary(op: UnaryOp, t: &Tensor) -> Result<Tensor> {
    let kernels = (kernel_name!("unary", t.dtype(), op.name())?, kernel_name!("unary_vec", t.dtype(), op.name())?);
    map(kernels, t, &[KernelArg::I32(unary_code(op))], &[])
}

pub fn affine(t: &Tensor, mul: f32, add: f32) -> Result<Tensor> {
    let kernels = (kernel_name!("affine", t.dtype(), "affine")?, kernel_name!("affine_vec", t.dtype(), "affine")?);
    map(kernels, t, &[], &[KernelArg::F32(mul), KernelArg::F32(add)])
}

pub fn powf(t: &Tensor, e: f32) -> Result<Tensor> {
    let kernels = (kernel_name!("powf", t.dtype(), "powf")?, kernel_name!("powf_vec", t.dtype(), "powf")?);
    map(kernels, t, &[], &[KernelArg::F32(e)])
}

/// Clamps a contiguous tensor that owns its storage to [lo, hi], in place.
pub fn clamp_in_place(t: &Tensor, lo: f32, hi: f32) -> Result<()> {
    let n = t.elem_count();
    if n == 0 {
        return Ok(());
    }
    let x = t.gpu_ptr()?;
    let args = [KernelArg::Ptr(x), KernelArg::I64(n as i64), KernelArg::F32(lo), KernelArg::F32(hi)];
    let (kernel, blocks) = map_form(
        kernel_name!("clamp_in_place", t.dtype(), "clamp_in_place")?,
        kernel_name!("clamp_in_place_vec", t.dtype(), "clamp_in_place")?,
        t.dtype(),
        n,
        &[x],
    );
    device_of(t)?.launch(&Launch::linear(kernel, blocks, THREADS, &args))
}
