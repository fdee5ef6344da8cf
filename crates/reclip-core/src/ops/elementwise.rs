use crate::cpu::elementwise as cpu;
use crate::ops::{BinaryOp, UnaryOp, check_same};
use crate::{DType, Device, Element, Error, Result, Shape, Tensor, bf16, with_real};

impl Tensor {
    /// `op(self, rhs)` elementwise with NumPy broadcasting.
    pub fn binary(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        check_same(op.name(), &[self, rhs])?;
        let out_shape = Shape::broadcast(op.name(), self.shape(), rhs.shape())?;
        match self.device() {
            Device::Cpu => with_real!(self.dtype(), op.name(), T => {
                let a = self.cpu_real::<T>(op.name())?;
                let b = rhs.cpu_real::<T>(op.name())?;
                let out = cpu::binary(op, &a, self.shape(), &b, rhs.shape(), &out_shape);
                Ok(Tensor::from_real(out, out_shape, self.dtype()))
            }),
            Device::Gpu(_) => crate::gpu::binary(op, self, rhs, &out_shape),
        }
    }

    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, rhs)
    }

    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, rhs)
    }

    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, rhs)
    }

    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, rhs)
    }

    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Max, rhs)
    }

    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Min, rhs)
    }

    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        match self.device() {
            Device::Cpu => with_real!(self.dtype(), op.name(), T => {
                let x = self.cpu_real::<T>(op.name())?;
                Ok(Tensor::from_real(cpu::unary(op, &x), self.shape().clone(), self.dtype()))
            }),
            Device::Gpu(_) => crate::gpu::unary(op, self),
        }
    }

    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }

    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }

    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }

    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }

    pub fn recip(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Recip)
    }

    pub fn sqr(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqr)
    }

    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }

    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }

    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }

    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }

    /// `self * mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        match self.device() {
            Device::Cpu => with_real!(self.dtype(), "affine", T => {
                let x = self.cpu_real::<T>("affine")?;
                let out = cpu::affine(&x, T::from_f64(mul), T::from_f64(add));
                Ok(Tensor::from_real(out, self.shape().clone(), self.dtype()))
            }),
            Device::Gpu(_) => crate::gpu::affine(self, mul as f32, add as f32),
        }
    }

    pub fn scale(&self, s: f64) -> Result<Tensor> {
        self.affine(s, 0.0)
    }

    pub fn add_scalar(&self, a: f64) -> Result<Tensor> {
        self.affine(1.0, a)
    }

    /// `self ^ e` elementwise.
    pub fn powf(&self, e: f64) -> Result<Tensor> {
        match self.device() {
            Device::Cpu => with_real!(self.dtype(), "powf", T => {
                let x = self.cpu_real::<T>("powf")?;
                Ok(Tensor::from_real(cpu::powf(&x, T::from_f64(e)), self.shape().clone(), self.dtype()))
            }),
            Device::Gpu(_) => crate::gpu::powf(self, e as f32),
        }
    }

    /// Clamps every element to [lo, hi] in place: like the optimizer's
    /// update, an explicit exception to tensors being values. Shared storage
    /// is copied first, so other handles keep their values; storage this
    /// tensor owns alone keeps its address (and no host transfer happens).
    pub fn clamp_in_place(&mut self, lo: f64, hi: f64) -> Result<()> {
        match (self.device().clone(), self.dtype()) {
            (Device::Gpu(_), _) => {
                self.gpu_ptr_mut()?;
                crate::gpu::clamp_in_place(self, lo as f32, hi as f32)
            }
            (Device::Cpu, DType::F32) => {
                self.cpu_data_mut::<f32>()?.iter_mut().for_each(|x| *x = x.clamp(lo as f32, hi as f32));
                Ok(())
            }
            (Device::Cpu, DType::F64) => {
                self.cpu_data_mut::<f64>()?.iter_mut().for_each(|x| *x = x.clamp(lo, hi));
                Ok(())
            }
            (Device::Cpu, DType::BF16) => {
                let (lo, hi) = (lo as f32, hi as f32);
                self.cpu_data_mut::<bf16>()?.iter_mut().for_each(|x| *x = bf16::from_f32(x.to_f32().clamp(lo, hi)));
                Ok(())
            }
            (Device::Cpu, other) => Err(Error::DType { op: "clamp_in_place", got: other, expected: "a float dtype" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::{BinaryOp, UnaryOp};
    use crate::{DType, Device, Shape, Tensor, rng};

    fn reference_binary(op: BinaryOp, a: f64, b: f64) -> f64 {
        match op {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max => a.max(b),
            BinaryOp::Min => a.min(b),
        }
    }

    #[test]
    fn binary_broadcasts_like_numpy() {
        let mut r = rng(1);
        let shapes: [(&[usize], &[usize]); 5] = [
            (&[3, 7, 5], &[3, 7, 5]),
            (&[3, 7, 5], &[5]),
            (&[3, 1, 5], &[7, 1]),
            (&[1], &[3, 7, 5]),
            (&[3, 7, 5], &[3, 7, 1]),
        ];
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min] {
            for (sa, sb) in shapes {
                let a = Tensor::randn(sa, 0.0, 1.0, DType::F64, &Device::Cpu, &mut r).unwrap();
                let b = Tensor::rand_uniform(sb, 0.5, 2.0, DType::F64, &Device::Cpu, &mut r).unwrap();
                let out = a.binary(op, &b).unwrap();
                let shape = Shape::broadcast("t", a.shape(), b.shape()).unwrap();
                assert_eq!(out.shape(), &shape);
                let av = a.broadcast_as(shape.clone()).unwrap().to_vec_f64().unwrap();
                let bv = b.broadcast_as(shape.clone()).unwrap().to_vec_f64().unwrap();
                let got = out.to_vec_f64().unwrap();
                for i in 0..got.len() {
                    assert_eq!(got[i], reference_binary(op, av[i], bv[i]), "{op:?} {sa:?} {sb:?} at {i}");
                }
            }
        }
    }

    #[test]
    fn unary_and_affine_match_scalar_math() {
        let mut r = rng(2);
        // Log, sqrt and recip see positive inputs; the others see both signs.
        let pos = Tensor::rand_uniform([3, 7, 5], 0.1, 3.0, DType::F32, &Device::Cpu, &mut r).unwrap();
        let any = Tensor::rand_uniform([3, 7, 5], -3.0, 3.0, DType::F32, &Device::Cpu, &mut r).unwrap();
        type Case<'a> = (UnaryOp, fn(f32) -> f32, &'a Tensor);
        let cases: [Case; 12] = [
            (UnaryOp::Neg, |v| -v, &any),
            (UnaryOp::Exp, f32::exp, &any),
            (UnaryOp::Log, f32::ln, &pos),
            (UnaryOp::Sqrt, f32::sqrt, &pos),
            (UnaryOp::Recip, f32::recip, &pos),
            (UnaryOp::Sqr, |v| v * v, &any),
            (UnaryOp::Tanh, f32::tanh, &any),
            (UnaryOp::Sigmoid, |v| 1.0 / (1.0 + (-v).exp()), &any),
            (UnaryOp::Relu, |v| v.max(0.0), &any),
            (UnaryOp::Abs, f32::abs, &any),
            (UnaryOp::Step, |v| if v > 0.0 { 1.0 } else { 0.0 }, &any),
            (UnaryOp::Sign, |v| v.signum(), &any),
        ];
        for (op, f, x) in cases {
            let got = x.unary(op).unwrap().to_vec_f32().unwrap();
            for (g, v) in got.iter().zip(x.to_vec_f32().unwrap()) {
                assert!((g - f(v)).abs() <= 1e-6 * f(v).abs().max(1.0), "{op:?}({v}) = {g}");
            }
        }
        let xv = pos.to_vec_f32().unwrap();
        let a = pos.affine(2.0, -1.0).unwrap().to_vec_f32().unwrap();
        let p = pos.powf(1.5).unwrap().to_vec_f32().unwrap();
        for i in 0..xv.len() {
            assert_eq!(a[i], xv[i] * 2.0 - 1.0);
            assert!((p[i] - xv[i].powf(1.5)).abs() < 1e-5);
        }
    }

    #[test]
    fn bf16_rounds_results() {
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3], &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
        let y = x.scale(1.0 / 3.0).unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        let v = y.to_vec_f32().unwrap();
        assert_eq!(v[0], half::bf16::from_f32(1.0 / 3.0).to_f32());
        let z = x.to_dtype(DType::F32).unwrap();
        assert!(x.add(&z).is_err(), "mixed dtypes are rejected");
    }
}
