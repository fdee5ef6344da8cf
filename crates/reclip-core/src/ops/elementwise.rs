use crate::cpu::elementwise as cpu;
use crate::ops::{BinaryOp, UnaryOp, check_same};
use crate::{DType, DeviceOp, GpuDevice, Real, Result, Shape, Tensor, bf16};

/// `op(a, b)` with NumPy broadcasting to `out_shape`.
struct Binary<'a> {
    op: BinaryOp,
    a: &'a Tensor,
    b: &'a Tensor,
    out_shape: Shape,
}

impl DeviceOp for Binary<'_> {
    type Output = Tensor;
    const NAME: &'static str = "binary";

    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let a = self.a.cpu_real::<T>(self.op.name())?;
        let b = self.b.cpu_real::<T>(self.op.name())?;
        let out = cpu::binary(self.op, &a, self.a.shape(), &b, self.b.shape(), &self.out_shape);
        Ok(Tensor::from_real(out, self.out_shape, self.a.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::binary(self.op, self.a, self.b, &self.out_shape)
    }
}

struct Unary<'a> {
    op: UnaryOp,
    x: &'a Tensor,
}

impl DeviceOp for Unary<'_> {
    type Output = Tensor;
    const NAME: &'static str = "unary";

    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let x = self.x.cpu_real::<T>(self.op.name())?;
        Ok(Tensor::from_real(cpu::unary(self.op, &x), self.x.shape().clone(), self.x.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::unary(self.op, self.x)
    }
}

/// `x * mul + add`, the scalars in the compute type (f32 on a GPU).
struct Affine<'a> {
    x: &'a Tensor,
    mul: f64,
    add: f64,
}

impl DeviceOp for Affine<'_> {
    type Output = Tensor;
    const NAME: &'static str = "affine";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let x = self.x.cpu_real::<T>(Self::NAME)?;
        let out = cpu::affine(&x, T::from_f64(self.mul), T::from_f64(self.add));
        Ok(Tensor::from_real(out, self.x.shape().clone(), self.x.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::affine(self.x, self.mul as f32, self.add as f32)
    }
}

struct Powf<'a> {
    x: &'a Tensor,
    e: f64,
}

impl DeviceOp for Powf<'_> {
    type Output = Tensor;
    const NAME: &'static str = "powf";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let x = self.x.cpu_real::<T>(Self::NAME)?;
        Ok(Tensor::from_real(cpu::powf(&x, T::from_f64(self.e)), self.x.shape().clone(), self.x.dtype()))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::powf(self.x, self.e as f32)
    }
}

/// Clamps `t` to [lo, hi] in place.
struct ClampInPlace<'a> {
    t: &'a mut Tensor,
    lo: f64,
    hi: f64,
}

impl DeviceOp for ClampInPlace<'_> {
    type Output = ();
    const NAME: &'static str = "clamp_in_place";

    fn cpu<T: Real>(self) -> Result<()> {
        let t = self.t;
        if t.dtype() == DType::BF16 {
            // Clamped in f32, bf16's compute type, and rounded back.
            let (lo, hi) = (self.lo as f32, self.hi as f32);
            t.cpu_data_mut::<bf16>()?.iter_mut().for_each(|x| *x = bf16::from_f32(x.to_f32().clamp(lo, hi)));
        } else {
            let (lo, hi) = (T::from_f64(self.lo), T::from_f64(self.hi));
            t.cpu_data_mut::<T>()?.iter_mut().for_each(|x| *x = x.clamp(lo, hi));
        }
        Ok(())
    }

    fn gpu(self, _: &GpuDevice) -> Result<()> {
        let t = self.t;
        t.gpu_ptr_mut()?;
        crate::gpu::clamp_in_place(t, self.lo as f32, self.hi as f32)
    }
}

impl Tensor {
    /// `op(self, rhs)` elementwise with NumPy broadcasting.
    pub fn binary(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        check_same(op.name(), &[self, rhs])?;
        let out_shape = Shape::broadcast(op.name(), self.shape(), rhs.shape())?;
        Binary { op, a: self, b: rhs, out_shape }.run(self)
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
        Unary { op, x: self }.run(self)
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
        Affine { x: self, mul, add }.run(self)
    }

    pub fn scale(&self, s: f64) -> Result<Tensor> {
        self.affine(s, 0.0)
    }

    pub fn add_scalar(&self, a: f64) -> Result<Tensor> {
        self.affine(1.0, a)
    }

    /// `self ^ e` elementwise.
    pub fn powf(&self, e: f64) -> Result<Tensor> {
        Powf { x: self, e }.run(self)
    }

    /// Clamps every element to [lo, hi] in place: like the optimizer's
    /// update, an explicit exception to tensors being values. Shared storage
    /// is copied first, so other handles keep their values; storage this
    /// tensor owns alone keeps its address (and no host transfer happens).
    pub fn clamp_in_place(&mut self, lo: f64, hi: f64) -> Result<()> {
        // Dispatched on the device and dtype, not on a handle on `self`,
        // which would share the storage written in place and force a copy.
        let (device, dtype) = (self.device().clone(), self.dtype());
        ClampInPlace { t: self, lo, hi }.run_on(&device, dtype)
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
