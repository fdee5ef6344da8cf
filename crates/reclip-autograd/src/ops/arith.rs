use crate::{Op, Var};
use reclip_core::ops::{BinaryOp, UnaryOp};
use reclip_core::{Result, Tensor};

fn reduce_to(g: Tensor, like: &Tensor) -> Result<Tensor> {
    g.sum_to_shape(like.shape())
}

/// `op(a, b)` with broadcasting; each gradient is summed back to its input's shape.
struct Binary {
    op: BinaryOp,
}

/// The operands and the output (the quotient's gradient reuses it).
struct BinarySaved {
    a: Tensor,
    b: Tensor,
    out: Tensor,
}

impl Op<2> for Binary {
    const NAME: &'static str = "binary";
    type Saved = BinarySaved;

    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn forward(&self, [a, b]: [&Tensor; 2], _: [bool; 2]) -> Result<(Tensor, BinarySaved)> {
        let out = a.binary(self.op, b)?;
        Ok((out.clone(), BinarySaved { a: a.clone(), b: b.clone(), out }))
    }

    fn backward(self, s: BinarySaved, g: &Tensor, needs: [bool; 2]) -> Result<[Option<Tensor>; 2]> {
        let BinarySaved { a, b, out } = s;
        let (da, db) = match self.op {
            BinaryOp::Add => (needs[0].then(|| g.clone()), needs[1].then(|| g.clone())),
            BinaryOp::Sub => (needs[0].then(|| g.clone()), needs[1].then(|| g.neg()).transpose()?),
            BinaryOp::Mul => (needs[0].then(|| g.mul(&b)).transpose()?, needs[1].then(|| g.mul(&a)).transpose()?),
            BinaryOp::Div => {
                (needs[0].then(|| g.div(&b)).transpose()?, needs[1].then(|| g.mul(&out)?.div(&b)?.neg()).transpose()?)
            }
            op @ (BinaryOp::Max | BinaryOp::Min) => {
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
        Ok([da.map(|d| reduce_to(d, &a)).transpose()?, db.map(|d| reduce_to(d, &b)).transpose()?])
    }
}

/// `op(x)` elementwise.
struct Unary {
    op: UnaryOp,
}

/// The input and the output, whichever the derivative is written in.
struct UnarySaved {
    x: Tensor,
    y: Tensor,
}

impl Op<1> for Unary {
    const NAME: &'static str = "unary";
    type Saved = UnarySaved;

    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, UnarySaved)> {
        let y = x.unary(self.op)?;
        Ok((y.clone(), UnarySaved { x: x.clone(), y }))
    }

    fn backward(self, s: UnarySaved, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        let UnarySaved { x, y } = s;
        let dx = match self.op {
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
        Ok([Some(dx)])
    }
}

/// `x * mul + add`.
struct Affine {
    mul: f64,
    add: f64,
}

impl Op<1> for Affine {
    const NAME: &'static str = "affine";
    type Saved = ();

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, ())> {
        Ok((x.affine(self.mul, self.add)?, ()))
    }

    fn backward(self, _: (), g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(g.scale(self.mul)?)])
    }
}

/// `x ^ e`; the backward needs `x`.
struct Powf {
    e: f64,
}

impl Op<1> for Powf {
    const NAME: &'static str = "powf";
    type Saved = Tensor;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, Tensor)> {
        Ok((x.powf(self.e)?, x.clone()))
    }

    fn backward(self, x: Tensor, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(g.mul(&x.powf(self.e - 1.0)?.scale(self.e)?)?)])
    }
}

impl Var {
    fn binary(&self, op: BinaryOp, rhs: &Var) -> Result<Var> {
        Binary { op }.apply([self, rhs])
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
        Unary { op }.apply([self])
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
        Affine { mul, add }.apply([self])
    }

    pub fn scale(&self, s: f64) -> Result<Var> {
        self.affine(s, 0.0)
    }

    pub fn powf(&self, e: f64) -> Result<Var> {
        Powf { e }.apply([self])
    }
}
