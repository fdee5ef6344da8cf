//! The linear layers as tape nodes. A layer with a bias and one without have
//! different numbers of inputs, so they are different ops: [`Linear`] and
//! [`LinearBias`]; [`LinearAct`] adds the activation to the bias's epilogue.

use crate::epilogue::{bias_act_backward, bias_act_forward, bias_grad};
use crate::{Activation, OP};
use reclip_autograd::{Op, Var};
use reclip_core::{Error, Result, Tensor};

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

/// What the gradients of a layer's GEMM z = x·Wᵀ need.
struct Gemm {
    /// x as [rows, in].
    x2: Tensor,
    w: Tensor,
    x_dims: Vec<usize>,
}

impl Gemm {
    /// z = x·Wᵀ as [rows, out], and the layer output's dims [..., out].
    fn forward(x: &Tensor, w: &Tensor) -> Result<(Tensor, Vec<usize>, Gemm)> {
        let (x2, out_dims) = flatten_input(x, w)?;
        let z = x2.matmul(&w.transpose(0, 1)?)?;
        Ok((z, out_dims, Gemm { x2, w: w.clone(), x_dims: x.dims().to_vec() }))
    }

    /// The layer output's gradient [..., out] as [rows, out], as z is.
    fn flat(&self, grad: &Tensor) -> Result<Tensor> {
        grad.reshape([self.x2.dims()[0], self.w.dims()[0]])
    }

    /// dx = du·W and dW = duᵀ·x from the gradient `du` of z.
    fn backward(self, du: &Tensor, [x, w]: [bool; 2]) -> Result<[Option<Tensor>; 2]> {
        let dx = x.then(|| du.matmul(&self.w)?.reshape(self.x_dims)).transpose()?;
        let dw = w.then(|| du.transpose(0, 1)?.matmul(&self.x2)).transpose()?;
        Ok([dx, dw])
    }
}

/// y = x·Wᵀ: inputs x, W.
struct Linear;

impl Op<2> for Linear {
    const NAME: &'static str = OP;
    type Saved = Gemm;

    fn forward(&self, [x, w]: [&Tensor; 2], _: [bool; 2]) -> Result<(Tensor, Gemm)> {
        let (z, out_dims, gemm) = Gemm::forward(x, w)?;
        Ok((z.reshape(out_dims)?, gemm))
    }

    fn backward(self, gemm: Gemm, grad: &Tensor, needs: [bool; 2]) -> Result<[Option<Tensor>; 2]> {
        let dy = gemm.flat(grad)?;
        gemm.backward(&dy, needs)
    }
}

/// y = x·Wᵀ + b: inputs x, W, b.
struct LinearBias;

impl Op<3> for LinearBias {
    const NAME: &'static str = OP;
    type Saved = Gemm;

    fn forward(&self, [x, w, b]: [&Tensor; 3], _: [bool; 3]) -> Result<(Tensor, Gemm)> {
        let (z, out_dims, gemm) = Gemm::forward(x, w)?;
        Ok((bias_act_forward(&z, b, None)?.reshape(out_dims)?, gemm))
    }

    fn backward(self, gemm: Gemm, grad: &Tensor, [x, w, b]: [bool; 3]) -> Result<[Option<Tensor>; 3]> {
        let dy = gemm.flat(grad)?;
        let [dx, dw] = gemm.backward(&dy, [x, w])?;
        Ok([dx, dw, b.then(|| bias_grad(&dy)).transpose()?])
    }
}

/// y = act(x·Wᵀ + b): inputs x, W, b.
struct LinearAct {
    act: Activation,
}

/// The GEMM's saved state, its output z [rows, out] and the bias, which the
/// backward epilogue needs to recompute act'(z + b).
struct LinearActSaved {
    gemm: Gemm,
    z: Tensor,
    bias: Tensor,
}

impl Op<3> for LinearAct {
    const NAME: &'static str = "linear_act";
    type Saved = LinearActSaved;

    fn forward(&self, [x, w, b]: [&Tensor; 3], _: [bool; 3]) -> Result<(Tensor, LinearActSaved)> {
        let (z, out_dims, gemm) = Gemm::forward(x, w)?;
        let y = bias_act_forward(&z, b, Some(self.act))?.reshape(out_dims)?;
        Ok((y, LinearActSaved { gemm, z, bias: b.clone() }))
    }

    fn backward(self, s: LinearActSaved, grad: &Tensor, [x, w, b]: [bool; 3]) -> Result<[Option<Tensor>; 3]> {
        let dy = s.gemm.flat(grad)?;
        let (du, db) = bias_act_backward(&dy, &s.z, &s.bias, self.act)?;
        let [dx, dw] = s.gemm.backward(&du, [x, w])?;
        Ok([dx, dw, b.then_some(db)])
    }
}

/// y = x·Wᵀ (+ bias) for `x` [..., in], `weight` [out, in] (PyTorch's
/// layout), `bias` [out].
pub fn linear(x: &Var, weight: &Var, bias: Option<&Var>) -> Result<Var> {
    match bias {
        Some(b) => LinearBias.apply([x, weight, b]),
        None => Linear.apply([x, weight]),
    }
}

/// y = act(x·Wᵀ + bias): the GEMM, then the fused bias + activation epilogue.
pub fn linear_act(x: &Var, weight: &Var, bias: &Var, act: Activation) -> Result<Var> {
    LinearAct { act }.apply([x, weight, bias])
}
