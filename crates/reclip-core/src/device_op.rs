//! The one place where an op picks its device: a [`DeviceOp`] states its CPU
//! path, generic over the compute type, and its GPU path, the launches of its
//! kernels; [`DeviceOp::run`] chooses between them.

use crate::{DType, Device, GpuDevice, Real, Result, Tensor, with_real};

/// A computation on tensors with one implementation per device. The struct
/// implementing it holds the op's inputs and settings, already checked, and
/// is consumed by the run: it may hold `&mut` state (an in-place update).
pub trait DeviceOp {
    type Output;

    /// The op's name in error messages.
    const NAME: &'static str;

    /// The name of this instance: an op type that stands for several (the
    /// binary and unary elementwise ops) names the one at hand.
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// The CPU reference, computing in `T`: f32 for f32 and bf16 tensors
    /// (bf16 results rounded once at the end, as the kernels do), f64 for f64.
    fn cpu<T: Real>(self) -> Result<Self::Output>;

    /// The kernel launches on `device` (the CUDA runtime or the emulator).
    fn gpu(self, device: &GpuDevice) -> Result<Self::Output>;

    /// Runs the op on the device of `on`, in the compute type of its dtype.
    fn run(self, on: &Tensor) -> Result<Self::Output>
    where
        Self: Sized,
    {
        self.run_on(on.device(), on.dtype())
    }

    /// Runs the op on `device`, in the compute type of `dtype`: for ops whose
    /// inputs do not include a tensor to take them from.
    fn run_on(self, device: &Device, dtype: DType) -> Result<Self::Output>
    where
        Self: Sized,
    {
        match device {
            Device::Cpu => with_real!(dtype, self.name(), T => self.cpu::<T>()),
            Device::Gpu(gpu) => self.gpu(gpu),
        }
    }
}
