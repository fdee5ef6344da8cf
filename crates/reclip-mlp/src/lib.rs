//! reclip's MLP layers, open_clip's `c_fc → act → c_proj`. The GEMMs go
//! through `Tensor::matmul` (cuBLAS on a GPU, reading the PyTorch-layout
//! weight [out, in] as a transposed view, without a copy); the bias add and
//! the activation are one fused epilogue kernel, forward and backward, and
//! the bias gradient is a deterministic column reduction fused into the
//! backward epilogue. Each layer is one tape node:
//!
//! - [`linear`]: y = x·Wᵀ (+ b);
//! - [`linear_act`]: y = act(x·Wᵀ + b), act = GELU (exact, with erf) or
//!   QuickGELU (u·σ(1.702u)), saving the GEMM's output for the backward;
//! - [`mlp`]: `linear_act` then `linear`.

mod cpu;
mod gpu;
mod simd;

use reclip_autograd::Var;
use reclip_core::ops::check_same;
use reclip_core::{Device, Error, Result, Tensor, with_real};

const OP: &str = "linear";

/// The MLP's activation: open_clip's `nn.GELU()` (exact) or its `QuickGELU`
/// (the original CLIP's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Gelu,
    QuickGelu,
}

/// The kernels' code for an epilogue's activation (0 = identity).
fn act_code(act: Option<Activation>) -> i32 {
    match act {
        None => 0,
        Some(Activation::Gelu) => 1,
        Some(Activation::QuickGelu) => 2,
    }
}

/// Rows and columns of `z` [..., cols], checked against `bias` [cols].
fn epilogue_shape(z: &Tensor, bias: &Tensor) -> Result<(usize, usize)> {
    check_same(OP, &[z, bias])?;
    if !z.dtype().is_float() {
        return Err(Error::DType { op: OP, got: z.dtype(), expected: "f32, bf16 or f64" });
    }
    match z.dims().split_last() {
        Some((&cols, lead)) if bias.dims() == [cols] => Ok((lead.iter().product(), cols)),
        _ => Err(Error::invalid(OP, format!("bias {} does not fit the output {}", bias.shape(), z.shape()))),
    }
}

/// act(z + bias) with `bias` [cols] broadcast over the rows of `z` [..., cols];
/// `None` is the identity.
pub fn bias_act_forward(z: &Tensor, bias: &Tensor, act: Option<Activation>) -> Result<Tensor> {
    let (rows, cols) = epilogue_shape(z, bias)?;
    match z.device() {
        Device::Cpu => with_real!(z.dtype(), OP, T => {
            let y = cpu::bias_act_forward::<T>(&z.cpu_real::<T>(OP)?, &bias.cpu_real::<T>(OP)?, act);
            Ok(Tensor::from_real(y, z.shape().clone(), z.dtype()))
        }),
        Device::Gpu(_) => gpu::bias_act_forward(z, bias, act_code(act), rows, cols),
    }
}

/// The backward of [`bias_act_forward`] with an activation: du = dy·act'(z + bias)
/// (the gradient of z) and db = Σ_rows du.
pub fn bias_act_backward(dy: &Tensor, z: &Tensor, bias: &Tensor, act: Activation) -> Result<(Tensor, Tensor)> {
    let (rows, cols) = epilogue_shape(z, bias)?;
    check_same(OP, &[z, dy])?;
    reclip_core::ops::check_shape(OP, dy, z.dims())?;
    match z.device() {
        Device::Cpu => with_real!(z.dtype(), OP, T => {
            let (du, db) = cpu::bias_act_backward::<T>(
                &dy.cpu_real::<T>(OP)?,
                &z.cpu_real::<T>(OP)?,
                &bias.cpu_real::<T>(OP)?,
                act,
            );
            Ok((Tensor::from_real(du, z.shape().clone(), z.dtype()), Tensor::from_real(db, [cols], z.dtype())))
        }),
        Device::Gpu(_) => {
            let (du, db) = gpu::column_sums(dy, Some((z, bias, act_code(Some(act)))), rows, cols)?;
            Ok((du.expect("the epilogue's backward returns du"), db))
        }
    }
}

/// The bias gradient of a linear layer without activation: `dy` [..., cols]
/// summed over everything but its last dimension.
pub fn bias_grad(dy: &Tensor) -> Result<Tensor> {
    if !dy.dtype().is_float() {
        return Err(Error::DType { op: OP, got: dy.dtype(), expected: "f32, bf16 or f64" });
    }
    let Some((&cols, lead)) = dy.dims().split_last() else {
        return Err(Error::invalid(OP, "the gradient of a bias needs at least one dimension"));
    };
    let rows = lead.iter().product();
    match dy.device() {
        Device::Cpu => with_real!(dy.dtype(), OP, T => {
            Ok(Tensor::from_real(cpu::bias_grad::<T>(&dy.cpu_real::<T>(OP)?, cols), [cols], dy.dtype()))
        }),
        Device::Gpu(_) => Ok(gpu::column_sums(dy, None, rows, cols)?.1),
    }
}

/// `x` [..., in] as [rows, in], checked against `weight` [out, in].
fn flatten_input(x: &Tensor, weight: &Tensor) -> Result<(Tensor, Vec<usize>)> {
    let (Some(&inp), &[out, w_in]) = (x.dims().last(), weight.dims()) else {
        return Err(Error::invalid(
            OP,
            format!("expected x [..., in] and weight [out, in], got {} and {}", x.shape(), weight.shape()),
        ));
    };
    if inp != w_in {
        return Err(Error::invalid(
            OP,
            format!("weight {} takes {w_in} input features, x {} has {inp}", weight.shape(), x.shape()),
        ));
    }
    let mut out_dims = x.dims().to_vec();
    *out_dims.last_mut().expect("x has a last dimension") = out;
    Ok((x.reshape([x.elem_count() / inp.max(1), inp])?, out_dims))
}

/// dx = du·W and dW = duᵀ·x for the GEMM of a linear layer.
fn gemm_grads(du: &Tensor, x2: &Tensor, w: &Tensor, x_dims: &[usize], needs: &[bool]) -> Result<[Option<Tensor>; 2]> {
    let dx = needs[0].then(|| du.matmul(w)?.reshape(x_dims)).transpose()?;
    let dw = needs[1].then(|| du.transpose(0, 1)?.matmul(x2)).transpose()?;
    Ok([dx, dw])
}

/// y = x·Wᵀ (+ bias) for `x` [..., in], `weight` [out, in] (PyTorch's
/// layout), `bias` [out].
pub fn linear(x: &Var, weight: &Var, bias: Option<&Var>) -> Result<Var> {
    let (x2, out_dims) = flatten_input(x.tensor(), weight.tensor())?;
    let w = weight.tensor().clone();
    let z = x2.matmul(&w.transpose(0, 1)?)?;
    let y = match bias {
        Some(b) => bias_act_forward(&z, b.tensor(), None)?,
        None => z,
    }
    .reshape(out_dims)?;
    let (x_dims, has_bias) = (x.tensor().dims().to_vec(), bias.is_some());
    let backward = move |g: &Tensor, needs: &[bool]| {
        let dy = g.reshape([x2.dims()[0], w.dims()[0]])?;
        let [dx, dw] = gemm_grads(&dy, &x2, &w, &x_dims, needs)?;
        let mut grads = vec![dx, dw];
        if has_bias {
            grads.push(needs[2].then(|| bias_grad(&dy)).transpose()?);
        }
        Ok(grads)
    };
    match bias {
        Some(b) => Var::from_op(OP, &[x, weight, b], y, backward),
        None => Var::from_op(OP, &[x, weight], y, backward),
    }
}

/// y = act(x·Wᵀ + bias): the GEMM, then the fused bias + activation epilogue.
pub fn linear_act(x: &Var, weight: &Var, bias: &Var, act: Activation) -> Result<Var> {
    let (x2, out_dims) = flatten_input(x.tensor(), weight.tensor())?;
    let w = weight.tensor().clone();
    let z = x2.matmul(&w.transpose(0, 1)?)?;
    let y = bias_act_forward(&z, bias.tensor(), Some(act))?.reshape(out_dims)?;
    let (b, x_dims) = (bias.tensor().clone(), x.tensor().dims().to_vec());
    Var::from_op("linear_act", &[x, weight, bias], y, move |g: &Tensor, needs: &[bool]| {
        let dy = g.reshape(z.dims())?;
        let (du, db) = bias_act_backward(&dy, &z, &b, act)?;
        let [dx, dw] = gemm_grads(&du, &x2, &w, &x_dims, needs)?;
        Ok(vec![dx, dw, needs[2].then_some(db)])
    })
}

/// open_clip's transformer MLP: c_fc, the activation, c_proj.
pub fn mlp(
    x: &Var,
    fc_weight: &Var,
    fc_bias: &Var,
    proj_weight: &Var,
    proj_bias: &Var,
    act: Activation,
) -> Result<Var> {
    linear(&linear_act(x, fc_weight, fc_bias, act)?, proj_weight, Some(proj_bias))
}
