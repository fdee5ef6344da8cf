//! Devices. `Cpu` runs the rayon reference implementations; `Gpu` runs reclip's
//! CUDA kernels through a [`KernelBackend`]: cudarc on a real GPU, or the CPU
//! emulator that executes the same kernel sources for tests. Both backends take
//! the same [`Launch`] descriptions, so the code that computes grids, blocks and
//! shared memory is shared by the two and exercised by CI.

mod memory;

use crate::{DType, Result};
use std::fmt;
use std::sync::Arc;

#[derive(Clone)]
pub enum Device {
    Cpu,
    Gpu(GpuDevice),
}

impl Device {
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }

    pub fn gpu(&self) -> Option<&GpuDevice> {
        match self {
            Device::Cpu => None,
            Device::Gpu(g) => Some(g),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            Device::Gpu(g) => g.name(),
        }
    }

    pub fn same(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Gpu(a), Device::Gpu(b)) => a.same(b),
            _ => false,
        }
    }

    /// The memory this device offers in bytes, None when unknown. On the CPU
    /// the smallest of the machine's RAM, the cgroup limit and the address
    /// space limit (`ulimit -v`); on a GPU its total memory, or the host's
    /// when the backend does not say (the emulator, whose buffers are host
    /// memory). A total, not what is free now: the callers refuse what
    /// surely cannot fit, and what is free changes while they run.
    pub fn memory_bytes(&self) -> Option<u64> {
        match self {
            Device::Cpu => memory::host_memory_bytes(),
            Device::Gpu(g) => g.backend().memory_bytes().or_else(memory::host_memory_bytes),
        }
    }

    /// Waits for all queued work (a no-op on the CPU, whose ops are synchronous).
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Gpu(g) => g.backend().synchronize(),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A handle to a kernel backend; cheap to clone.
#[derive(Clone)]
pub struct GpuDevice(Arc<dyn KernelBackend>);

impl GpuDevice {
    pub fn new(backend: Arc<dyn KernelBackend>) -> Self {
        GpuDevice(backend)
    }

    pub fn backend(&self) -> &dyn KernelBackend {
        self.0.as_ref()
    }

    pub fn name(&self) -> String {
        self.0.name()
    }

    pub fn same(&self, other: &GpuDevice) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub fn launch(&self, launch: &Launch) -> Result<()> {
        self.0.launch(launch)
    }

    pub fn gemm(&self, call: &GemmCall) -> Result<()> {
        self.0.gemm(call)
    }

    /// Records what `body` queues on this device as a graph (see
    /// [`KernelBackend::begin_capture`]). The recording ends whether or not
    /// `body` succeeds; `body`'s error comes first. Nothing `body` queued has
    /// run when this returns: replay the graph to run it.
    pub fn capture(&self, body: impl FnOnce() -> Result<()>) -> Result<Box<dyn DeviceGraph>> {
        self.0.begin_capture()?;
        let ran = body();
        let graph = self.0.end_capture();
        ran?;
        graph
    }
}

/// One argument of a kernel, in the order of the kernel's parameter list.
/// Pointers are device addresses (host addresses on the emulator).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KernelArg {
    Ptr(u64),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    /// A view's shape and strides, the kernels' `StridedLayout`.
    Layout(KernelLayout),
}

impl KernelArg {
    /// Address of the argument's value, as `cuLaunchKernel` takes it.
    pub fn value_ptr(&self) -> *const std::ffi::c_void {
        match self {
            KernelArg::Ptr(v) => v as *const u64 as *const _,
            KernelArg::I32(v) => v as *const i32 as *const _,
            KernelArg::U32(v) => v as *const u32 as *const _,
            KernelArg::I64(v) => v as *const i64 as *const _,
            KernelArg::F32(v) => v as *const f32 as *const _,
            KernelArg::Layout(v) => v as *const KernelLayout as *const _,
        }
    }

    /// Size of the argument's value in bytes.
    pub fn size(&self) -> usize {
        match self {
            KernelArg::Ptr(_) | KernelArg::I64(_) => 8,
            KernelArg::I32(_) | KernelArg::U32(_) | KernelArg::F32(_) => 4,
            KernelArg::Layout(_) => std::mem::size_of::<KernelLayout>(),
        }
    }
}

/// The shape and strides (in elements) of a view, as kernels that read or
/// write non-contiguous tensors take them (`StridedLayout` in
/// kernels/common.cuh). The offset is not part of it: the pointer argument
/// already points at the view's first element.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    pub rank: i32,
    pub dims: [i32; 6],
    pub strides: [i64; 6],
}

impl KernelLayout {
    pub const MAX_RANK: usize = 6;

    /// The layout with size-1 dimensions dropped and adjacent dimensions that
    /// are contiguous with each other merged, which keeps most views within
    /// the kernels' six dimensions.
    pub fn new(layout: &crate::Layout) -> Result<Self> {
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (&d, &s) in layout.shape().dims().iter().zip(layout.strides()) {
            if d == 1 {
                continue;
            }
            match merged.last_mut() {
                Some((pd, ps)) if *ps == s * d => {
                    *pd *= d;
                    *ps = s;
                }
                _ => merged.push((d, s)),
            }
        }
        if merged.is_empty() {
            merged.push((1, 0));
        }
        if merged.len() > Self::MAX_RANK {
            return Err(crate::Error::invalid(
                "kernel layout",
                format!("a view of shape {} needs more than {} dimensions", layout.shape(), Self::MAX_RANK),
            ));
        }
        let mut out = KernelLayout { rank: merged.len() as i32, dims: [1; 6], strides: [0; 6] };
        for (i, (d, s)) in merged.into_iter().enumerate() {
            out.dims[i] = i32::try_from(d)
                .map_err(|_| crate::Error::invalid("kernel layout", format!("dimension of size {d} exceeds 2^31")))?;
            out.strides[i] = s as i64;
        }
        Ok(out)
    }
}

/// A kernel launch: which kernel, its grid and block, its dynamic shared
/// memory and its arguments.
#[derive(Clone, Debug)]
pub struct Launch<'a> {
    pub kernel: &'static str,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
    pub args: &'a [KernelArg],
}

impl<'a> Launch<'a> {
    /// A 1-D launch with no dynamic shared memory.
    pub fn linear(kernel: &'static str, blocks: u32, threads: u32, args: &'a [KernelArg]) -> Self {
        Launch { kernel, grid: [blocks, 1, 1], block: [threads, 1, 1], shared_bytes: 0, args }
    }

    pub fn threads_per_block(&self) -> u32 {
        self.block.iter().product()
    }
}

/// One operand of a row-major GEMM. Untransposed, element (i, p) of an m×k
/// operand sits at `ptr + i*ld + p`; transposed (stored k×m) at `ptr + p*ld + i`.
#[derive(Clone, Copy, Debug)]
pub struct GemmOperand {
    pub ptr: u64,
    pub transposed: bool,
    pub ld: usize,
    pub batch_stride: usize,
}

/// What a GEMM computes besides its product, in the same pass (cuBLASLt's
/// epilogues on CUDA). All work on one product (`batch` 1) with `alpha` 1;
/// their vectors are contiguous and their matrices row-major, in the call's
/// dtype. The GELU ones compute GELU's tanh approximation
/// ([`crate::cpu::gelu_tanh`]), as cuBLASLt does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GemmEpilogue {
    #[default]
    None,
    /// `C[i, j] = A·B[i, j] + beta·C[i, j] + bias[j]`: a bias of n elements
    /// added to every row, in f32 before C is rounded to its dtype. A linear
    /// layer's bias (y = x·Wᵀ + b). cuBLASLt's BIAS: reclip's row-major
    /// C is cuBLAS's column-major D, whose rows are reclip's columns.
    Bias { bias: u64 },
    /// The product as without epilogue, and `out[i] = Σ_p A[i, p]`, the sum
    /// of A over k (m elements, summed in f32). A linear layer's bias
    /// gradient taken from its weight gradient dW = dyᵀ·x: A = dyᵀ, so
    /// out = Σ_rows dy. cuBLASLt's BGRADB, because reclip's A is cuBLAS's B.
    BiasGrad { out: u64 },
    /// `u = A·B + beta·C + bias` (in f32, as for `Bias`), then `C = gelu(u)`
    /// and `aux = u`, both rounded to the dtype; aux is m×n at `ld_aux`
    /// elements a row, which must be a multiple of 8 and at least n. A
    /// linear layer with GELU, saving the pre-activation for its backward.
    /// cuBLASLt's GELU_AUX_BIAS.
    GeluAuxBias { bias: u64, aux: u64, ld_aux: usize },
    /// `C = (A·B + beta·C) · gelu'(aux)` and `out[j] = Σ_i C[i, j]` (n
    /// elements, summed in f32 before C is rounded), with aux as
    /// `GeluAuxBias` wrote it. The backward of that layer through the next
    /// GEMM: A = dy, B = the next layer's weight, C = the gradient of u, out
    /// = the bias gradient. cuBLASLt's DGELU_BGRAD.
    DGeluBiasGrad { aux: u64, ld_aux: usize, out: u64 },
}

impl GemmEpilogue {
    /// Its name in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            GemmEpilogue::None => "no",
            GemmEpilogue::Bias { .. } => "bias",
            GemmEpilogue::BiasGrad { .. } => "bias-gradient",
            GemmEpilogue::GeluAuxBias { .. } => "bias + GELU",
            GemmEpilogue::DGeluBiasGrad { .. } => "GELU-gradient + bias-gradient",
        }
    }

    /// The saved pre-activation's row length, for the GELU epilogues.
    pub fn ld_aux(&self) -> Option<usize> {
        match *self {
            GemmEpilogue::GeluAuxBias { ld_aux, .. } | GemmEpilogue::DGeluBiasGrad { ld_aux, .. } => Some(ld_aux),
            _ => None,
        }
    }
}

/// `C[b] = alpha * A[b] · B[b] + beta * C[b]` for `b < batch`, row-major, with
/// A m×k and B k×n; strides in elements; accumulation in f32; then the
/// [`GemmEpilogue`].
#[derive(Clone, Copy, Debug)]
pub struct GemmCall {
    pub dtype: DType,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub alpha: f32,
    pub beta: f32,
    pub a: GemmOperand,
    pub b: GemmOperand,
    pub c: u64,
    pub ldc: usize,
    pub c_batch_stride: usize,
    pub epilogue: GemmEpilogue,
}

impl GemmCall {
    /// Refuses an epilogue on a call it is not defined for (see
    /// [`GemmEpilogue`]); backends check before they run one.
    pub fn check_epilogue(&self) -> Result<()> {
        if let Some(ld) = self.epilogue.ld_aux()
            && (!ld.is_multiple_of(8) || ld < self.n)
        {
            return Err(crate::Error::invalid(
                "gemm",
                format!(
                    "the {} epilogue's pre-activation rows are {ld} elements apart: cuBLASLt needs a multiple \
                     of 8 of at least n = {}",
                    self.epilogue.name(),
                    self.n
                ),
            ));
        }
        if self.epilogue == GemmEpilogue::None || (self.batch == 1 && self.alpha == 1.0) {
            return Ok(());
        }
        Err(crate::Error::invalid(
            "gemm",
            format!(
                "the {} epilogue needs one product with alpha 1, got batch {} and alpha {} ({}x{}x{})",
                self.epilogue.name(),
                self.batch,
                self.alpha,
                self.m,
                self.n,
                self.k
            ),
        ))
    }
}

/// What a device that runs reclip's kernels provides. Memory is addressed by
/// u64 device pointers; all work is ordered on one stream, so a buffer freed
/// after a launch that reads it is only reused once that launch is done.
pub trait KernelBackend: Send + Sync {
    /// A human-readable name, e.g. "cuda:0 (NVIDIA H200)" or "emulator".
    fn name(&self) -> String;
    /// Allocates `bytes` of device memory. Its contents are undefined; test
    /// backends fill it with NaN so that unwritten outputs show up.
    fn alloc(&self, bytes: usize) -> Result<u64>;
    /// Returns memory obtained from `alloc`; called from `Drop`.
    fn free(&self, ptr: u64, bytes: usize);
    fn write(&self, dst: u64, src: &[u8]) -> Result<()>;
    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()>;
    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<()>;
    fn memset_zero(&self, dst: u64, bytes: usize) -> Result<()>;
    fn launch(&self, launch: &Launch) -> Result<()>;
    fn gemm(&self, call: &GemmCall) -> Result<()>;
    fn synchronize(&self) -> Result<()>;
    /// The device's total memory in bytes, when the backend knows it; see
    /// [`Device::memory_bytes`].
    fn memory_bytes(&self) -> Option<u64> {
        None
    }
    /// The backend itself, for code that needs one kind of backend's own
    /// interface (NCCL runs on the CUDA backend's context and stream).
    fn as_any(&self) -> &dyn std::any::Any;
    /// Starts recording the stream's work (a CUDA graph) instead of running
    /// it: until [`KernelBackend::end_capture`], launches, GEMMs, device
    /// copies, memsets, allocations and frees are recorded, not run, and
    /// host copies and `synchronize` are errors. A backend that cannot record
    /// says so.
    fn begin_capture(&self) -> Result<()> {
        Err(crate::Error::Device(format!("{} cannot record graphs", self.name())))
    }
    /// Ends the recording begun by [`KernelBackend::begin_capture`] and
    /// returns it, or why it cannot be replayed: memory allocated while
    /// recording that outlives the recording (its address would be reused by
    /// each replay), memory from before the recording freed in it (each replay
    /// would free it again), or an operation the recording refused.
    fn end_capture(&self) -> Result<Box<dyn DeviceGraph>> {
        Err(crate::Error::Device(format!("{} cannot record graphs", self.name())))
    }
}

/// Why a finished recording cannot be replayed, for the backends'
/// `end_capture`: the first problem it met (`problem`), else the
/// allocations made while recording that outlive it (`outliving` of them).
pub fn unreplayable(problem: Option<String>, outliving: usize) -> Option<String> {
    let n = outliving;
    problem.or_else(|| {
        (n > 0).then(|| {
            let (s, verb) = if n == 1 { ("", "s") } else { ("s", "") };
            format!("{n} allocation{s} made while recording outlive{verb} it")
        })
    })
}

/// Work recorded from a backend's stream, replayed as one launch. The memory
/// it allocated stays reserved to it at the same addresses, so each replay
/// reads what the host last wrote into the buffers the recording read from.
pub trait DeviceGraph: Send + Sync {
    /// Queues the recorded work once more, in its order, on the stream.
    fn replay(&self) -> Result<()>;
}
