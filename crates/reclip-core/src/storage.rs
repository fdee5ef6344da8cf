use crate::{DType, GpuDevice};
use half::bf16;

/// Host memory of a CPU tensor.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    F64(Vec<f64>),
    U32(Vec<u32>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::U32(_) => DType::U32,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::U32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice(v),
            CpuStorage::F64(v) => bytemuck::cast_slice(v),
            CpuStorage::U32(v) => bytemuck::cast_slice(v),
        }
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        match self {
            CpuStorage::F32(v) => bytemuck::cast_slice_mut(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice_mut(v),
            CpuStorage::F64(v) => bytemuck::cast_slice_mut(v),
            CpuStorage::U32(v) => bytemuck::cast_slice_mut(v),
        }
    }

    pub fn zeros(dtype: DType, len: usize) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; len]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; len]),
            DType::F64 => CpuStorage::F64(vec![0.0; len]),
            DType::U32 => CpuStorage::U32(vec![0; len]),
        }
    }
}

/// Device memory of a GPU tensor, returned to the backend when dropped.
pub struct GpuBuffer {
    device: GpuDevice,
    ptr: u64,
    len: usize,
    dtype: DType,
}

impl GpuBuffer {
    /// Allocates room for `len` elements of `dtype`; contents undefined.
    pub fn alloc(device: &GpuDevice, dtype: DType, len: usize) -> crate::Result<Self> {
        let ptr = device.backend().alloc(len * dtype.size_in_bytes())?;
        Ok(GpuBuffer { device: device.clone(), ptr, len, dtype })
    }

    pub fn device(&self) -> &GpuDevice {
        &self.device
    }

    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size_in_bytes()
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        self.device.backend().free(self.ptr, self.bytes());
    }
}

pub enum Storage {
    Cpu(CpuStorage),
    Gpu(GpuBuffer),
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Gpu(b) => b.dtype(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            Storage::Gpu(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
