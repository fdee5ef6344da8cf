//! The linear layers as tape nodes. A layer with a bias and one without have
//! different numbers of inputs, so they are different ops: [`Linear`] and
//! [`LinearBias`] (whose bias is fused into its GEMMs); [`LinearAct`] adds
//! the activation to the bias's epilogue kernel.

use crate::epilogue::{bias_act_backward, bias_act_forward, bias_grad};
use crate::fused::{linear_bias_forward, weight_bias_grad};
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
    let rows = x.dims()[..x.rank() - 1].iter().product::<usize>();
    Ok((x.reshape([rows, inp])?, out_dims))
}

/// What the gradients of a layer's GEMM z = x·Wᵀ need.
struct Gemm {
    /// x as [rows, in].
    x2: Tensor,
    w: Tensor,
    x_dims: Vec<usize>,
}

impl Gemm {
    /// The GEMM's operands, and the layer output's dims [..., out].
    fn new(x: &Tensor, w: &Tensor) -> Result<(Gemm, Vec<usize>)> {
        let (x2, out_dims) = flatten_input(x, w)?;
        Ok((Gemm { x2, w: w.clone(), x_dims: x.dims().to_vec() }, out_dims))
    }

    /// z = x·Wᵀ as [rows, out].
    fn product(&self) -> Result<Tensor> {
        self.x2.matmul(&self.w.transpose(0, 1)?)
    }

    /// The layer output's gradient [..., out] as [rows, out], as z is.
    fn flat(&self, grad: &Tensor) -> Result<Tensor> {
        grad.reshape([self.x2.dims()[0], self.w.dims()[0]])
    }

    /// dx = du·W from the gradient `du` of z.
    fn dx(&self, du: &Tensor) -> Result<Tensor> {
        du.matmul(&self.w)?.reshape(self.x_dims.clone())
    }

    /// dW = duᵀ·x from the gradient `du` of z.
    fn dw(&self, du: &Tensor) -> Result<Tensor> {
        du.transpose(0, 1)?.matmul(&self.x2)
    }

    /// dx and dW, those asked for.
    fn backward(&self, du: &Tensor, [x, w]: [bool; 2]) -> Result<[Option<Tensor>; 2]> {
        Ok([x.then(|| self.dx(du)).transpose()?, w.then(|| self.dw(du)).transpose()?])
    }
}

/// y = x·Wᵀ: inputs x, W.
struct Linear;

impl Op<2> for Linear {
    const NAME: &'static str = OP;
    type Saved = Gemm;

    fn forward(&self, [x, w]: [&Tensor; 2], _: [bool; 2]) -> Result<(Tensor, Gemm)> {
        let (gemm, out_dims) = Gemm::new(x, w)?;
        Ok((gemm.product()?.reshape(out_dims)?, gemm))
    }

    fn backward(self, gemm: Gemm, grad: &Tensor, needs: [bool; 2]) -> Result<[Option<Tensor>; 2]> {
        let dy = gemm.flat(grad)?;
        gemm.backward(&dy, needs)
    }
}

/// y = x·Wᵀ + b: inputs x, W, b. On a GPU the bias is the epilogue of the
/// forward GEMM, and its gradient that of the weight gradient's GEMM.
struct LinearBias;

impl Op<3> for LinearBias {
    const NAME: &'static str = OP;
    type Saved = Gemm;

    fn forward(&self, [x, w, b]: [&Tensor; 3], _: [bool; 3]) -> Result<(Tensor, Gemm)> {
        let (gemm, out_dims) = Gemm::new(x, w)?;
        Ok((linear_bias_forward(&gemm.x2, &gemm.w, b)?.reshape(out_dims)?, gemm))
    }

    fn backward(self, gemm: Gemm, grad: &Tensor, [x, w, b]: [bool; 3]) -> Result<[Option<Tensor>; 3]> {
        let dy = gemm.flat(grad)?;
        let dx = x.then(|| gemm.dx(&dy)).transpose()?;
        let (dw, db) = match (w, b) {
            (true, true) => {
                let (dw, db) = weight_bias_grad(&dy, &gemm.x2)?;
                (Some(dw), Some(db))
            }
            // A frozen weight or bias: no GEMM to share.
            _ => (w.then(|| gemm.dw(&dy)).transpose()?, b.then(|| bias_grad(&dy)).transpose()?),
        };
        Ok([dx, dw, db])
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
        let (gemm, out_dims) = Gemm::new(x, w)?;
        let z = gemm.product()?;
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
/// layout), `bias` [out]; on a GPU the bias and its gradient are fused into
/// the GEMMs.
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
