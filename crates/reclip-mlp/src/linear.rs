//! The linear layers as tape nodes. A layer with a bias and one without have
//! different numbers of inputs, so they are different ops: [`Linear`] and
//! [`LinearBias`] (whose bias is fused into its GEMMs). The MLP is one node,
//! [`Mlp`], so that its backward can take c_fc's activation gradient in the
//! same GEMM as c_proj's input gradient.

use crate::epilogue::bias_grad;
use crate::fused::{hidden_forward, hidden_grad, linear_bias_forward, weight_bias_grad};
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

/// The gradients of a layer with bias, y = x·Wᵀ + b, those asked for, from
/// the output gradient `dy` [rows, out]; `db` when the caller has it already.
fn linear_bias_grads(
    gemm: &Gemm,
    dy: &Tensor,
    db: Option<Tensor>,
    [x, w, b]: [bool; 3],
) -> Result<[Option<Tensor>; 3]> {
    let dx = x.then(|| gemm.dx(dy)).transpose()?;
    let (dw, db) = match (w, b, db) {
        (_, _, Some(db)) => (w.then(|| gemm.dw(dy)).transpose()?, b.then_some(db)),
        (true, true, None) => {
            let (dw, db) = weight_bias_grad(dy, &gemm.x2)?;
            (Some(dw), Some(db))
        }
        // A frozen weight or bias: no GEMM to share.
        (_, _, None) => (w.then(|| gemm.dw(dy)).transpose()?, b.then(|| bias_grad(dy)).transpose()?),
    };
    Ok([dx, dw, db])
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

    fn backward(self, gemm: Gemm, grad: &Tensor, needs: [bool; 3]) -> Result<[Option<Tensor>; 3]> {
        linear_bias_grads(&gemm, &gemm.flat(grad)?, None, needs)
    }
}

/// open_clip's MLP, y = c_proj(act(c_fc(x))): inputs x, c_fc's W and b,
/// c_proj's W and b.
struct Mlp {
    act: Activation,
}

/// c_fc's and c_proj's GEMM operands (c_proj's input is the hidden
/// activation h) and c_fc's pre-activation u.
struct MlpSaved {
    fc: Gemm,
    proj: Gemm,
    u: Tensor,
}

impl Op<5> for Mlp {
    const NAME: &'static str = "mlp";
    type Saved = MlpSaved;

    fn forward(&self, [x, w1, b1, w2, b2]: [&Tensor; 5], _: [bool; 5]) -> Result<(Tensor, MlpSaved)> {
        let (fc, _) = Gemm::new(x, w1)?;
        let (h, u) = hidden_forward(&fc.x2, w1, b1, self.act)?;
        let (proj, _) = Gemm::new(&h, w2)?;
        let y = linear_bias_forward(&h, w2, b2)?;
        let mut out_dims = x.dims().to_vec();
        *out_dims.last_mut().expect("x has a last dimension") = w2.dims()[0];
        Ok((y.reshape(out_dims)?, MlpSaved { fc, proj, u }))
    }

    fn backward(self, s: MlpSaved, grad: &Tensor, [x, w1, b1, w2, b2]: [bool; 5]) -> Result<[Option<Tensor>; 5]> {
        let dy = s.proj.flat(grad)?;
        let [_, dw2, db2] = linear_bias_grads(&s.proj, &dy, None, [false, w2, b2])?;
        let [dx, dw1, db1] = if x || w1 || b1 {
            let (du, db1) = hidden_grad(&dy, &s.proj.w, &s.u, self.act)?;
            linear_bias_grads(&s.fc, &du, db1, [x, w1, b1])?
        } else {
            [None, None, None]
        };
        Ok([dx, dw1, db1, dw2, db2])
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

/// open_clip's transformer MLP, c_proj(act(c_fc(x))), for `x` [..., width],
/// c_fc's `fc_weight` [hidden, width] and `fc_bias` [hidden], c_proj's
/// `proj_weight` [out, hidden] and `proj_bias` [out]. On a GPU the biases,
/// and GELU's tanh approximation, ride in the GEMMs' epilogues.
pub fn mlp(
    x: &Var,
    fc_weight: &Var,
    fc_bias: &Var,
    proj_weight: &Var,
    proj_bias: &Var,
    act: Activation,
) -> Result<Var> {
    Mlp { act }.apply([x, fc_weight, fc_bias, proj_weight, proj_bias])
}
