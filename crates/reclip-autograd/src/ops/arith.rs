use crate::Var;
use reclip_core::ops::{BinaryOp, UnaryOp};
use reclip_core::{Result, Tensor};

fn reduce_to(g: Tensor, like: &Tensor) -> Result<Tensor> {
    g.sum_to_shape(like.shape())
}

impl Var {
    fn binary(&self, op: BinaryOp, rhs: &Var) -> Result<Var> {
        let out = self.tensor().binary(op, rhs.tensor())?;
        let (a, b) = (self.tensor().clone(), rhs.tensor().clone());
        let saved_out = out.clone();
        Var::from_op(op.name(), &[self, rhs], out, move |g: &Tensor, needs: &[bool]| {
            let (da, db) = match op {
                BinaryOp::Add => (needs[0].then(|| g.clone()), needs[1].then(|| g.clone())),
                BinaryOp::Sub => (needs[0].then(|| g.clone()), needs[1].then(|| g.neg()).transpose()?),
                BinaryOp::Mul => (needs[0].then(|| g.mul(&b)).transpose()?, needs[1].then(|| g.mul(&a)).transpose()?),
                BinaryOp::Div => (
                    needs[0].then(|| g.div(&b)).transpose()?,
                    needs[1].then(|| g.mul(&saved_out)?.div(&b)?.neg()).transpose()?,
                ),
                BinaryOp::Max | BinaryOp::Min => {
                    // The gradient goes to the selected side; ties go to the left.
                    // Left wins when a >= b (max) or a <= b (min): 1 - step(loser - winner).
                    let left_wins = match op {
                        BinaryOp::Max => b.sub(&a)?,
                        _ => a.sub(&b)?,
                    }
                    .unary(UnaryOp::Step)?
                    .affine(-1.0, 1.0)?;
                    let ga = g.mul(&left_wins)?;
                    (needs[0].then(|| ga.clone()), needs[1].then(|| g.sub(&ga)).transpose()?)
                }
            };
            Ok(vec![da.map(|d| reduce_to(d, &a)).transpose()?, db.map(|d| reduce_to(d, &b)).transpose()?])
        })
    }

    pub fn add(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Add, rhs)
    }

    pub fn sub(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Sub, rhs)
    }

    pub fn mul(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Mul, rhs)
    }

    pub fn div(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Div, rhs)
    }

    pub fn maximum(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Max, rhs)
    }

    pub fn minimum(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Min, rhs)
    }

    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        let x = self.tensor().clone();
        let out = x.unary(op)?;
        let y = out.clone();
        Var::from_op(op.name(), &[self], out, move |g: &Tensor, _: &[bool]| {
            let dx = match op {
                UnaryOp::Neg => g.neg()?,
                UnaryOp::Exp => g.mul(&y)?,
                UnaryOp::Log => g.div(&x)?,
                UnaryOp::Sqrt => g.div(&y)?.scale(0.5)?,
                UnaryOp::Recip => g.mul(&y.sqr()?)?.neg()?,
                UnaryOp::Sqr => g.mul(&x)?.scale(2.0)?,
                UnaryOp::Tanh => g.mul(&y.sqr()?.affine(-1.0, 1.0)?)?,
                UnaryOp::Sigmoid => g.mul(&y.mul(&y.affine(-1.0, 1.0)?)?)?,
                UnaryOp::Relu => g.mul(&x.unary(UnaryOp::Step)?)?,
                UnaryOp::Abs => g.mul(&x.unary(UnaryOp::Sign)?)?,
                UnaryOp::Step | UnaryOp::Sign => g.zeros_like()?,
            };
            Ok(vec![Some(dx)])
        })
    }

    pub fn neg(&self) -> Result<Var> {
        self.unary(UnaryOp::Neg)
    }

    pub fn exp(&self) -> Result<Var> {
        self.unary(UnaryOp::Exp)
    }

    pub fn log(&self) -> Result<Var> {
        self.unary(UnaryOp::Log)
    }

    pub fn sqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Sqrt)
    }

    pub fn recip(&self) -> Result<Var> {
        self.unary(UnaryOp::Recip)
    }

    pub fn sqr(&self) -> Result<Var> {
        self.unary(UnaryOp::Sqr)
    }

    pub fn tanh(&self) -> Result<Var> {
        self.unary(UnaryOp::Tanh)
    }

    pub fn sigmoid(&self) -> Result<Var> {
        self.unary(UnaryOp::Sigmoid)
    }

    pub fn relu(&self) -> Result<Var> {
        self.unary(UnaryOp::Relu)
    }

    pub fn abs(&self) -> Result<Var> {
        self.unary(UnaryOp::Abs)
    }

    /// `self * mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Var> {
        let out = self.tensor().affine(mul, add)?;
        Var::from_op("affine", &[self], out, move |g: &Tensor, _: &[bool]| Ok(vec![Some(g.scale(mul)?)]))
    }

    pub fn scale(&self, s: f64) -> Result<Var> {
        self.affine(s, 0.0)
    }

    pub fn powf(&self, e: f64) -> Result<Var> {
        let x = self.tensor().clone();
        let out = x.powf(e)?;
        Var::from_op("powf", &[self], out, move |g: &Tensor, _: &[bool]| {
            Ok(vec![Some(g.mul(&x.powf(e - 1.0)?.scale(e)?)?)])
        })
    }
}
