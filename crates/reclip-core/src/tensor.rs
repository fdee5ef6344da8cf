use crate::cpu::{gather_contiguous, read_real, storage_from_real};
use crate::storage::{CpuStorage, GpuBuffer, Storage};
use crate::{DType, Device, DeviceOp, Element, Error, GpuDevice, Layout, Real, Result, Shape};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// An n-dimensional array on a device. Cloning is cheap: clones share storage.
/// Views (reshape of contiguous data, transpose, narrow) share it too.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    layout: Layout,
    device: Device,
}

impl Tensor {
    pub fn from_parts(storage: Storage, layout: Layout, device: Device) -> Self {
        Tensor { storage: Arc::new(storage), layout, device }
    }

    pub(crate) fn from_cpu(storage: CpuStorage, shape: impl Into<Shape>) -> Self {
        Self::from_parts(Storage::Cpu(storage), Layout::contiguous(shape), Device::Cpu)
    }

    /// A view of this tensor's storage with another layout.
    pub(crate) fn with_layout(&self, layout: Layout) -> Self {
        Tensor { storage: self.storage.clone(), layout, device: self.device.clone() }
    }

    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>, device: &Device) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.elem_count() {
            return Err(Error::invalid("from_vec", format!("{} elements cannot have shape {shape}", data.len())));
        }
        let storage = match T::DTYPE {
            DType::F32 => CpuStorage::F32(bytemuck::allocation::cast_vec(data)),
            DType::F64 => CpuStorage::F64(bytemuck::allocation::cast_vec(data)),
            DType::U32 => CpuStorage::U32(bytemuck::allocation::cast_vec(data)),
            DType::BF16 => CpuStorage::BF16(bytemuck::allocation::cast_vec(data)),
        };
        Tensor::from_cpu(storage, shape).to_device(device)
    }

    pub fn from_slice<T: Element>(data: &[T], shape: impl Into<Shape>, device: &Device) -> Result<Self> {
        Self::from_vec(data.to_vec(), shape, device)
    }

    /// Values given in f64, stored as `dtype`.
    pub fn from_f64s(data: &[f64], shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.elem_count() {
            return Err(Error::invalid("from_f64s", format!("{} elements cannot have shape {shape}", data.len())));
        }
        Tensor::from_cpu(storage_from_real(data.to_vec(), dtype), shape).to_device(device)
    }

    pub fn full(value: f64, shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Self> {
        let shape = shape.into();
        let n = shape.elem_count();
        match device {
            Device::Cpu => Ok(Tensor::from_cpu(storage_from_real(vec![value; n], dtype), shape)),
            Device::Gpu(_) if value == 0.0 => {
                let t = Tensor::empty(shape, dtype, device)?;
                // An empty tensor needs no memset (each is a call to the
                // driver, and a node of a recorded graph).
                if let Storage::Gpu(b) = t.storage.as_ref()
                    && b.bytes() > 0
                {
                    b.device().backend().memset_zero(b.ptr(), b.bytes())?;
                }
                Ok(t)
            }
            Device::Gpu(_) => {
                let t = Tensor::empty(shape, dtype, device)?;
                crate::gpu::fill(&t, value)?;
                Ok(t)
            }
        }
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Self> {
        Self::full(0.0, shape, dtype, device)
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Self> {
        Self::full(1.0, shape, dtype, device)
    }

    pub fn zeros_like(&self) -> Result<Self> {
        Self::zeros(self.shape().clone(), self.dtype(), &self.device)
    }

    pub fn scalar(value: f64, dtype: DType, device: &Device) -> Result<Self> {
        Self::full(value, Shape::new([]), dtype, device)
    }

    /// A tensor whose contents the caller fills: zeros on the CPU, undefined on
    /// a GPU backend (NaN on the emulator, so that unwritten elements show up).
    pub fn empty(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Self> {
        let shape = shape.into();
        let n = shape.elem_count();
        let storage = match device {
            Device::Cpu => Storage::Cpu(CpuStorage::zeros(dtype, n)),
            Device::Gpu(g) => Storage::Gpu(GpuBuffer::alloc(g, dtype, n)?),
        };
        Ok(Tensor::from_parts(storage, Layout::contiguous(shape), device.clone()))
    }

    /// Normally distributed values, generated on the host from `rng`.
    pub fn randn(
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let shape = shape.into();
        let data: Vec<f64> = (0..shape.elem_count())
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                mean + std * z
            })
            .collect();
        Self::from_f64s(&data, shape, dtype, device)
    }

    /// Uniformly distributed values in `[lo, hi)`.
    pub fn rand_uniform(
        shape: impl Into<Shape>,
        lo: f64,
        hi: f64,
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let shape = shape.into();
        let dist = Uniform::new(lo, hi).map_err(|e| Error::invalid("rand_uniform", e.to_string()))?;
        let data: Vec<f64> = (0..shape.elem_count()).map(|_| dist.sample(rng)).collect();
        Self::from_f64s(&data, shape, dtype, device)
    }

    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }

    pub fn dims(&self) -> &[usize] {
        self.layout.shape().dims()
    }

    pub fn rank(&self) -> usize {
        self.layout.shape().rank()
    }

    pub fn elem_count(&self) -> usize {
        self.layout.shape().elem_count()
    }

    /// Extent of dimension `dim`; negative counts from the end.
    pub fn dim(&self, dim: isize) -> Result<usize> {
        self.shape().dim(dim)
    }

    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// True when both tensors share one storage allocation.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// How many tensor handles share this storage (for memory tests).
    pub fn storage_owners(&self) -> usize {
        Arc::strong_count(&self.storage)
    }

    pub fn cpu_storage(&self, op: &'static str) -> Result<&CpuStorage> {
        match self.storage.as_ref() {
            Storage::Cpu(s) => Ok(s),
            Storage::Gpu(_) => Err(Error::NotOnDevice { op, device: self.device.name() }),
        }
    }

    /// The elements in row-major order as compute type `T` (CPU tensors only).
    pub fn cpu_real<T: Real>(&self, op: &'static str) -> Result<Cow<'_, [T]>> {
        Ok(read_real(self.cpu_storage(op)?, &self.layout))
    }

    /// Builds a CPU tensor of `dtype` from compute-type results.
    pub fn from_real<T: Real>(data: Vec<T>, shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::from_cpu(storage_from_real(data, dtype), shape)
    }

    /// Device address of the first element (GPU tensors only), for kernel
    /// arguments that are read.
    pub fn gpu_ptr(&self) -> Result<u64> {
        match self.storage.as_ref() {
            Storage::Gpu(b) => Ok(b.ptr() + (self.layout.offset() * b.dtype().size_in_bytes()) as u64),
            Storage::Cpu(_) => Err(Error::invalid("gpu_ptr", "tensor is on the CPU")),
        }
    }

    /// Device address of the first element of a tensor about to be written in
    /// place. Shared storage is copied first so that other tensors keep their values.
    pub fn gpu_ptr_mut(&mut self) -> Result<u64> {
        self.make_unique()?;
        self.gpu_ptr()
    }

    /// The contiguous elements of a CPU tensor, for writing in place. Shared or
    /// strided storage is copied first.
    pub fn cpu_data_mut<T: Element>(&mut self) -> Result<&mut [T]> {
        if self.dtype() != T::DTYPE {
            return Err(Error::DTypeMismatch { op: "cpu_data_mut", lhs: self.dtype(), rhs: T::DTYPE });
        }
        self.make_unique()?;
        let n = self.elem_count();
        let offset = self.layout.offset();
        match Arc::get_mut(&mut self.storage) {
            Some(Storage::Cpu(s)) => Ok(&mut bytemuck::cast_slice_mut(s.as_bytes_mut())[offset..offset + n]),
            Some(Storage::Gpu(_)) => Err(Error::invalid("cpu_data_mut", "tensor is on a GPU device")),
            None => unreachable!("make_unique leaves one owner"),
        }
    }

    /// Ensures this tensor owns its storage alone and is contiguous.
    fn make_unique(&mut self) -> Result<()> {
        if Arc::strong_count(&self.storage) > 1 || !self.is_contiguous() || self.layout.offset() != 0 {
            *self = self.copy()?;
        }
        Ok(())
    }

    /// A contiguous copy that shares nothing with `self`.
    pub fn copy(&self) -> Result<Tensor> {
        match self.storage.as_ref() {
            Storage::Cpu(s) => Ok(Tensor::from_cpu(gather_contiguous(s, &self.layout), self.shape().clone())),
            Storage::Gpu(_) => {
                if self.is_contiguous() {
                    let g = self.device.gpu().expect("gpu storage lives on a gpu device");
                    let out = Tensor::empty(self.shape().clone(), self.dtype(), &self.device)?;
                    let bytes = self.elem_count() * self.dtype().size_in_bytes();
                    g.backend().copy(self.gpu_ptr()?, out.gpu_ptr()?, bytes)?;
                    Ok(out)
                } else {
                    crate::gpu::strided_copy(self)
                }
            }
        }
    }

    /// This tensor if contiguous, otherwise a contiguous copy.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() { Ok(self.clone()) } else { self.copy() }
    }

    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        match (self.storage.as_ref(), device) {
            (Storage::Cpu(_), Device::Cpu) => Ok(self.clone()),
            (Storage::Gpu(_), Device::Gpu(g)) if self.device.gpu().is_some_and(|d| d.same(g)) => Ok(self.clone()),
            (Storage::Cpu(s), Device::Gpu(g)) => {
                if s.dtype() == DType::F64 {
                    return Err(Error::DType {
                        op: "to_device",
                        got: DType::F64,
                        expected: "f32, bf16 or u32 on a GPU device",
                    });
                }
                let host = self.contiguous()?;
                let bytes = host.contiguous_host_bytes()?;
                let buf = GpuBuffer::alloc(g, s.dtype(), self.elem_count())?;
                g.backend().write(buf.ptr(), bytes)?;
                Ok(Tensor::from_parts(Storage::Gpu(buf), Layout::contiguous(self.shape().clone()), device.clone()))
            }
            (Storage::Gpu(b), _) => {
                // Read the storage span the view covers, then gather on the host.
                let size = b.dtype().size_in_bytes();
                let extent = self.layout.storage_extent();
                let mut host = CpuStorage::zeros(b.dtype(), extent);
                b.device().backend().read(b.ptr(), &mut host.as_bytes_mut()[..extent * size])?;
                let cpu = Tensor::from_parts(Storage::Cpu(host), self.layout.clone(), Device::Cpu).contiguous()?;
                cpu.to_device(device)
            }
        }
    }

    fn contiguous_host_bytes(&self) -> Result<&[u8]> {
        let s = self.cpu_storage("to_device")?;
        let size = s.dtype().size_in_bytes();
        let start = self.layout.offset() * size;
        Ok(&s.as_bytes()[start..start + self.elem_count() * size])
    }

    /// Converts to another dtype (bf16 rounds to nearest even, as on the GPU).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let cast = Cast { x: self, dtype };
        if self.dtype() == DType::U32 {
            // u32 has no compute type of its own: it converts through f32,
            // or f64 when that is the target (every u32 is exact in f64).
            let through = if dtype == DType::F64 { DType::F64 } else { DType::F32 };
            return cast.run_on(self.device(), through);
        }
        cast.run(self)
    }

    /// The elements in row-major order, converted to `T` (floats convert among
    /// themselves; u32 only to u32).
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let cpu = self.to_device(&Device::Cpu)?;
        let s = cpu.cpu_storage("to_vec")?;
        if s.dtype() == T::DTYPE {
            let c = cpu.contiguous()?;
            return Ok(bytemuck::cast_slice(c.contiguous_host_bytes()?).to_vec());
        }
        if s.dtype() == DType::U32 || T::DTYPE == DType::U32 {
            return Err(Error::DTypeMismatch { op: "to_vec", lhs: s.dtype(), rhs: T::DTYPE });
        }
        Ok(read_real::<f64>(s, &cpu.layout).iter().map(|&v| T::from_f64(v)).collect())
    }

    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        self.to_vec()
    }

    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        self.to_vec()
    }

    /// The value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f64> {
        if self.elem_count() != 1 {
            return Err(Error::invalid("to_scalar", format!("tensor of shape {} is not a scalar", self.shape())));
        }
        Ok(self.to_vec_f64()?[0])
    }
}

/// `x` converted to `dtype`. The host reads `x` in the compute type it is
/// run with (f32, or f64 for f64 data and targets), from which widening to
/// f64 is exact.
struct Cast<'a> {
    x: &'a Tensor,
    dtype: DType,
}

impl DeviceOp for Cast<'_> {
    type Output = Tensor;
    const NAME: &'static str = "to_dtype";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let v = self.x.cpu_real::<T>(Self::NAME)?.into_owned();
        Ok(Tensor::from_real(v, self.x.shape().clone(), self.dtype))
    }

    fn gpu(self, _: &GpuDevice) -> Result<Tensor> {
        crate::gpu::cast(self.x, self.dtype)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({}, {}, {})", self.shape(), self.dtype(), self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_exact_where_the_target_can_hold_the_value() {
        let ids = Tensor::from_vec(vec![16_777_217u32, 3], [2], &Device::Cpu).unwrap();
        assert_eq!(ids.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap(), [16_777_217.0, 3.0]);
        assert_eq!(ids.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap(), [16_777_216.0, 3.0]);
        let x = Tensor::from_vec(vec![0.1f32, -2.5], [2], &Device::Cpu).unwrap();
        assert_eq!(x.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap(), [0.1f32 as f64, -2.5]);
        let y = Tensor::from_vec(vec![0.1f64], [1], &Device::Cpu).unwrap();
        assert_eq!(y.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap(), [0.1f32]);
    }
}
