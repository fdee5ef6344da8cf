use crate::graph::{CudaStepGraph, Recording};
use cudarc::cublas::sys as cublas;
use cudarc::cublaslt::result::CublasError;
use cudarc::cublaslt::{result as lt, sys as ltsys};
use cudarc::driver::sys as cu;
use cudarc::driver::{CudaContext, CudaStream, DriverError, result};
use reclip_core::{DType, Device, DeviceGraph, Error, GemmCall, GemmEpilogue, KernelBackend, Launch, Result};
use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::sync::{Arc, Mutex, MutexGuard};

/// Dynamic shared memory beyond this needs an opt-in per kernel.
const DEFAULT_DYNAMIC_SHARED: u32 = 48 * 1024;

fn driver(what: &str, e: DriverError) -> Error {
    Error::Device(format!("CUDA {what}: {e}"))
}

struct Function {
    handle: cu::CUfunction,
    /// Largest dynamic shared memory size enabled for it so far.
    shared_limit: u32,
}

/// How a [`CudaBackend`] runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CudaOptions {
    /// f32 GEMMs on the tensor cores in TF32 (inputs rounded to 10-bit
    /// mantissas, f32 accumulation): several times faster, and about 1e-3
    /// relative error instead of f32's 1e-6. Off unless asked (`--tf32`).
    pub tf32: bool,
    /// Fill every allocation with NaN bytes, so that output elements a kernel
    /// fails to write show up (tests).
    pub poison: bool,
}

/// The environment switch that makes every launch and GEMM synchronous.
pub const SYNC_VAR: &str = "RECLIP_CUDA_SYNC";

/// A CUDA GPU: one context, one stream on which all work is ordered, the
/// embedded kernel modules, a cuBLAS handle on that stream, and a cuBLASLt
/// handle with its workspace for the GEMMs with an epilogue.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: Vec<cu::CUmodule>,
    functions: Mutex<HashMap<&'static str, Function>>,
    cublas: cublas::cublasHandle_t,
    cublaslt: ltsys::cublasLtHandle_t,
    /// The GEMM workspace of cuBLAS and cuBLASLt, allocated once: their
    /// GEMMs all run on the one stream, so they never use it at the same
    /// time, and neither allocates while a graph is recorded.
    workspace: u64,
    workspace_bytes: usize,
    /// The graph being recorded, if one is.
    recording: Mutex<Option<Recording>>,
    options: CudaOptions,
    /// `RECLIP_CUDA_SYNC=1`: wait for each launch and GEMM and name the
    /// failing one, as CUDA_LAUNCH_BLOCKING does for other programs. An
    /// asynchronous fault otherwise surfaces at a later, unrelated call.
    sync: bool,
    name: String,
}

// SAFETY: the raw handles are used only while holding the context bound; the
// function cache is behind a mutex; cuBLAS and the stream serialise work.
unsafe impl Send for CudaBackend {}
unsafe impl Sync for CudaBackend {}

/// Whether a CUDA driver library (libcuda) can be loaded here.
pub fn driver_installed() -> bool {
    // SAFETY: only probes whether the library can be loaded.
    unsafe { cu::is_culib_present() }
}

/// The installed driver's CUDA version, e.g. "13.0".
pub fn driver_version() -> Result<String> {
    let mut v = 0;
    // SAFETY: writes one int; callable before cuInit.
    unsafe { cu::cuDriverGetVersion(&mut v).result() }.map_err(|e| driver("cuDriverGetVersion", e))?;
    Ok(format!("{}.{}", v / 1000, (v % 1000) / 10))
}

/// The CUDA backend behind `device`, None for the CPU and other backends.
pub fn cuda_backend(device: &Device) -> Option<&CudaBackend> {
    device.gpu()?.backend().as_any().downcast_ref()
}

impl CudaBackend {
    /// Opens CUDA device `ordinal`. Errors say why: "no CUDA device: …" when
    /// no driver is installed, "CUDA device N cannot be used: …" when one is
    /// but the device does not open.
    pub fn new(ordinal: usize, options: CudaOptions) -> Result<Self> {
        // cudarc panics when libcuda is missing; check first.
        if !driver_installed() {
            return Err(Error::Device("no CUDA device: the CUDA driver library (libcuda) is not installed".into()));
        }
        let unusable =
            |what: &str, e: DriverError| Error::Device(format!("CUDA device {ordinal} cannot be used: {what}: {e}"));
        // Every other driver call answers CUDA_ERROR_NOT_INITIALIZED before this.
        result::init().map_err(|e| unusable("cuInit", e))?;
        let count = result::device::get_count().map_err(|e| unusable("counting devices", e))?;
        if ordinal >= count as usize {
            return Err(Error::Device(format!(
                "CUDA device {ordinal} cannot be used: the driver sees {count} device{}",
                if count == 1 { "" } else { "s" }
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| unusable("creating its context", e))?;
        let stream = ctx.new_stream().map_err(|e| unusable("creating a stream", e))?;
        let gpu_name = result::device::get_name(ctx.cu_device()).unwrap_or_else(|_| "unknown GPU".into());

        // Keep freed memory in the pool instead of returning it to the driver
        // at each synchronisation: allocation is then cheap in steady state.
        // SAFETY: the device handle is valid; the attribute takes a u64.
        unsafe {
            let pool = result::device::get_default_mem_pool(ctx.cu_device()).map_err(|e| driver("memory pool", e))?;
            let mut threshold = u64::MAX;
            result::mem_pool::set_attribute(
                pool,
                cu::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                &mut threshold as *mut u64 as *mut c_void,
            )
            .map_err(|e| driver("memory pool", e))?;
        }

        let mut modules = Vec::new();
        for (file, image) in crate::kernels::FATBINS {
            // SAFETY: the image is a fatbin produced by nvcc at build time,
            // embedded 8-byte aligned as the driver reads it.
            let module = unsafe { result::module::load_data(image.0.as_ptr() as *const c_void) }
                .map_err(|e| unusable(&format!("loading the kernels of {file}.cu"), e))?;
            modules.push(module);
        }

        // SAFETY: probing and creating a cuBLAS handle on the bound context.
        let handle = unsafe {
            if !cublas::is_culib_present() {
                return Err(Error::Device(format!(
                    "CUDA device {ordinal} cannot be used: cuBLAS (libcublas) is not installed"
                )));
            }
            let handle = cudarc::cublas::result::create_handle().map_err(|e| Error::Device(format!("cuBLAS: {e}")))?;
            cudarc::cublas::result::set_stream(handle, stream.cu_stream() as _)
                .map_err(|e| Error::Device(format!("cuBLAS: {e}")))?;
            handle
        };

        // SAFETY: probing and creating a cuBLASLt handle on the bound context.
        if !unsafe { ltsys::is_culib_present() } {
            return Err(Error::Device(format!(
                "CUDA device {ordinal} cannot be used: cuBLASLt (libcublasLt) is not installed"
            )));
        }
        let cublaslt = lt::create_handle().map_err(|e| Error::Device(format!("cuBLASLt: {e}")))?;
        // NVIDIA's recommended workspace: 32 MiB on Hopper and later, 4 MiB before.
        let major = ctx
            .attribute(cu::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .map_err(|e| unusable("reading its compute capability", e))?;
        let workspace_bytes = if major >= 9 { 32 << 20 } else { 4 << 20 };
        // SAFETY: a plain allocation on the bound context, freed in Drop.
        let workspace = unsafe { result::malloc_sync(workspace_bytes) }
            .map_err(|e| unusable("allocating the GEMM workspace", e))?;
        // SAFETY: the handle and the workspace live as long as the backend.
        let status = unsafe { cublas::cublasSetWorkspace_v2(handle, workspace as *mut c_void, workspace_bytes) };
        if status != cublas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(Error::Device(format!("CUDA device {ordinal} cannot be used: cuBLAS workspace: {status:?}")));
        }

        Ok(CudaBackend {
            ctx,
            stream,
            modules,
            functions: Mutex::new(HashMap::new()),
            cublas: handle,
            cublaslt,
            workspace,
            workspace_bytes,
            recording: Mutex::new(None),
            options,
            sync: std::env::var(SYNC_VAR).is_ok_and(|v| v == "1"),
            name: format!("cuda:{ordinal} ({gpu_name}{})", if options.tf32 { ", TF32 f32 GEMMs" } else { "" }),
        })
    }

    /// In `RECLIP_CUDA_SYNC=1` mode, waits for the work just queued and
    /// names it in the error.
    fn checked(&self, what: impl FnOnce() -> String) -> Result<()> {
        if !self.sync || self.recording().is_some() {
            return Ok(());
        }
        // SAFETY: our stream.
        unsafe { result::stream::synchronize(self.stream.cu_stream()) }
            .map_err(|e| Error::Device(format!("CUDA error in {}: {e}", what())))
    }

    /// The stream all of this device's work is ordered on; its context is
    /// `stream().context()`. For libraries that queue work of their own
    /// (NCCL), which must order it with this stream by events.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| driver("context", e))
    }

    fn recording(&self) -> MutexGuard<'_, Option<Recording>> {
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An error while a graph is recorded: `what` waits for the device or
    /// moves host memory, which a recording cannot hold.
    fn refuse_while_recording(&self, what: &str) -> Result<()> {
        match self.recording().as_mut() {
            Some(r) => {
                let problem = format!("{what} while recording a graph");
                r.refuse(problem.clone());
                Err(Error::Device(format!("CUDA: {problem}")))
            }
            None => Ok(()),
        }
    }

    /// The kernel's handle, found in whichever module holds it, with enough
    /// dynamic shared memory enabled for this launch.
    fn function(&self, name: &'static str, shared_bytes: u32) -> Result<cu::CUfunction> {
        let mut cache = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.contains_key(name) {
            let cname = CString::new(name).map_err(|_| Error::Device("kernel name contains NUL".into()))?;
            let handle = self
                .modules
                .iter()
                // SAFETY: the modules are loaded and stay loaded while self lives.
                .find_map(|&m| unsafe { result::module::get_function(m, cname.clone()) }.ok())
                .ok_or_else(|| Error::Device(format!("no kernel named {name} in the CUDA build")))?;
            cache.insert(name, Function { handle, shared_limit: DEFAULT_DYNAMIC_SHARED });
        }
        let f = cache.get_mut(name).expect("inserted above");
        if shared_bytes > f.shared_limit {
            // SAFETY: valid function handle; the attribute takes an int.
            unsafe {
                result::function::set_function_attribute(
                    f.handle,
                    cu::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    shared_bytes as i32,
                )
            }
            .map_err(|e| driver(&format!("{name}: enabling {shared_bytes} bytes of shared memory"), e))?;
            f.shared_limit = shared_bytes;
        }
        Ok(f.handle)
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        let _ = self.bind();
        // SAFETY: handles created in `new`, destroyed once.
        unsafe {
            let _ = cudarc::cublas::result::destroy_handle(self.cublas);
            let _ = lt::destroy_handle(self.cublaslt);
            let _ = result::free_sync(self.workspace);
            for &m in &self.modules {
                let _ = result::module::unload(m);
            }
        }
    }
}

/// Element type and compute type of a GEMM in `dtype`: f32 is computed in
/// full f32 unless TF32 was asked for; bf16 accumulates in f32.
fn data_type(dtype: DType, tf32: bool) -> Result<(cublas::cudaDataType, cublas::cublasComputeType_t)> {
    use cublas::cublasComputeType_t::{CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32};
    match dtype {
        DType::F32 => {
            Ok((cublas::cudaDataType::CUDA_R_32F, if tf32 { CUBLAS_COMPUTE_32F_FAST_TF32 } else { CUBLAS_COMPUTE_32F }))
        }
        DType::BF16 => Ok((cublas::cudaDataType::CUDA_R_16BF, CUBLAS_COMPUTE_32F)),
        other => Err(Error::DType { op: "gemm", got: other, expected: "f32 or bf16" }),
    }
}

fn describe(l: &Launch) -> String {
    let [gx, gy, gz] = l.grid;
    let [bx, by, bz] = l.block;
    format!(
        "kernel {} (grid {gx}x{gy}x{gz}, block {bx}x{by}x{bz}, {} B dynamic shared memory)",
        l.kernel, l.shared_bytes
    )
}

fn describe_gemm(c: &GemmCall) -> String {
    match c.epilogue {
        GemmEpilogue::None => format!("cuBLAS GEMM {}x{}x{} (batch {}, {})", c.m, c.n, c.k, c.batch, c.dtype),
        e => format!("cuBLASLt GEMM {}x{}x{} ({}, {} epilogue)", c.m, c.n, c.k, c.dtype, e.name()),
    }
}

/// cuBLASLt's element and compute types for a GEMM in `dtype`, as [`data_type`].
fn lt_data_type(dtype: DType, tf32: bool) -> Result<(ltsys::cudaDataType, ltsys::cublasComputeType_t)> {
    use ltsys::cublasComputeType_t::{CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32};
    match dtype {
        DType::F32 => {
            Ok((ltsys::cudaDataType::CUDA_R_32F, if tf32 { CUBLAS_COMPUTE_32F_FAST_TF32 } else { CUBLAS_COMPUTE_32F }))
        }
        DType::BF16 => Ok((ltsys::cudaDataType::CUDA_R_16BF, CUBLAS_COMPUTE_32F)),
        other => Err(Error::DType { op: "gemm", got: other, expected: "f32 or bf16" }),
    }
}

/// A cuBLASLt descriptor, destroyed when dropped (also on the error paths).
struct LtObject<T: Copy> {
    handle: T,
    destroy: unsafe fn(T) -> std::result::Result<(), CublasError>,
}

impl<T: Copy> Drop for LtObject<T> {
    fn drop(&mut self) {
        // SAFETY: created once by cuBLASLt, destroyed once here.
        let _ = unsafe { (self.destroy)(self.handle) };
    }
}

/// A matrix layout: `rows`×`cols`, column-major, leading dimension `ld`.
fn lt_layout(
    dtype: ltsys::cudaDataType,
    rows: usize,
    cols: usize,
    ld: usize,
) -> std::result::Result<LtObject<ltsys::cublasLtMatrixLayout_t>, CublasError> {
    let handle = lt::create_matrix_layout(dtype, rows as u64, cols as u64, ld as i64)?;
    Ok(LtObject { handle, destroy: lt::destroy_matrix_layout })
}

/// Sets a matmul descriptor attribute to `value`, whose type is the one the
/// cuBLASLt documentation gives for `attr`.
///
/// # Safety
/// `desc` must be a live descriptor.
unsafe fn set_desc<V>(
    desc: ltsys::cublasLtMatmulDesc_t,
    attr: ltsys::cublasLtMatmulDescAttributes_t,
    value: &V,
) -> std::result::Result<(), CublasError> {
    // SAFETY: value covers size_of::<V>() bytes; the caller keeps desc alive.
    unsafe { lt::set_matmul_desc_attribute(desc, attr, value as *const V as *const c_void, size_of::<V>()) }
}

/// Sets a matmul preference attribute, as [`set_desc`].
///
/// # Safety
/// `pref` must be a live preference.
unsafe fn set_pref<V>(
    pref: ltsys::cublasLtMatmulPreference_t,
    attr: ltsys::cublasLtMatmulPreferenceAttributes_t,
    value: &V,
) -> std::result::Result<(), CublasError> {
    // SAFETY: as in set_desc.
    unsafe { lt::set_matmul_pref_attribute(pref, attr, value as *const V as *const c_void, size_of::<V>()) }
}

/// The alignment in bytes of a device address, up to the 256 bytes cuBLASLt
/// assumes unless told otherwise: views start inside their allocation.
fn alignment(ptr: u64) -> u32 {
    1 << (ptr | 256).trailing_zeros()
}

impl CudaBackend {
    /// A GEMM with an epilogue, through cuBLASLt: the same product as the
    /// cuBLAS path (reclip's B is cuBLAS's A and the other way round), the
    /// heuristic's first algorithm, the backend's workspace and stream. The
    /// bias has one element per row of cuBLAS's column-major D = reclip's
    /// Cᵀ, so per column of C (n); BGRADB sums cuBLAS's B = reclip's A over
    /// k (m elements). GELU_AUX_BIAS takes the bias as BIAS does;
    /// DGELU_BGRAD sums D's columns, one element per row of D (n). The
    /// vectors are in the output's dtype, cuBLASLt's default for f32 and
    /// bf16 outputs (BIAS_DATA_TYPE left unset).
    fn gemm_lt(
        &self,
        call: &GemmCall,
        dtype: ltsys::cudaDataType,
        compute: ltsys::cublasComputeType_t,
    ) -> std::result::Result<(), CublasError> {
        use ltsys::cublasLtEpilogue_t as E;
        use ltsys::cublasLtMatmulDescAttributes_t as D;
        use ltsys::cublasLtMatmulPreferenceAttributes_t as P;
        // (epilogue, its vector, the pre-activation matrix and its ld).
        let (epilogue, vector, aux) = match call.epilogue {
            GemmEpilogue::Bias { bias } => (E::CUBLASLT_EPILOGUE_BIAS, bias, None),
            GemmEpilogue::BiasGrad { out } => (E::CUBLASLT_EPILOGUE_BGRADB, out, None),
            GemmEpilogue::GeluAuxBias { bias, aux, ld_aux } => {
                (E::CUBLASLT_EPILOGUE_GELU_AUX_BIAS, bias, Some((aux, ld_aux as i64)))
            }
            GemmEpilogue::DGeluBiasGrad { aux, ld_aux, out } => {
                (E::CUBLASLT_EPILOGUE_DGELU_BGRAD, out, Some((aux, ld_aux as i64)))
            }
            GemmEpilogue::None => (E::CUBLASLT_EPILOGUE_DEFAULT, 0, None),
        };
        // cublasOperation_t, an int32: 0 = N, 1 = T.
        let op = |transposed: bool| transposed as i32;
        let desc = LtObject {
            handle: lt::create_matmul_desc(compute, ltsys::cudaDataType::CUDA_R_32F)?,
            destroy: lt::destroy_matmul_desc,
        };
        // SAFETY: desc is live; each value has its attribute's documented type.
        unsafe {
            set_desc(desc.handle, D::CUBLASLT_MATMUL_DESC_TRANSA, &op(call.b.transposed))?;
            set_desc(desc.handle, D::CUBLASLT_MATMUL_DESC_TRANSB, &op(call.a.transposed))?;
            set_desc(desc.handle, D::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue)?;
            set_desc(desc.handle, D::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &vector)?;
            // The pre-activation is cuBLAS's column-major n×m matrix, in the
            // output's dtype (AUX_DATA_TYPE left unset), ld in elements.
            if let Some((aux, ld)) = aux {
                set_desc(desc.handle, D::CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux)?;
                set_desc(desc.handle, D::CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld)?;
            }
        }
        let (m, n, k) = (call.m, call.n, call.k);
        // Each layout is the operand as stored, before its transpose.
        let a = if call.b.transposed { lt_layout(dtype, k, n, call.b.ld)? } else { lt_layout(dtype, n, k, call.b.ld)? };
        let b = if call.a.transposed { lt_layout(dtype, m, k, call.a.ld)? } else { lt_layout(dtype, k, m, call.a.ld)? };
        let c = lt_layout(dtype, n, m, call.ldc)?;
        let pref = LtObject { handle: lt::create_matmul_pref()?, destroy: lt::destroy_matmul_pref };
        // SAFETY: pref is live; the sizes are u64 and the alignments u32, as documented.
        unsafe {
            set_pref(pref.handle, P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &(self.workspace_bytes as u64))?;
            set_pref(pref.handle, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alignment(call.b.ptr))?;
            set_pref(pref.handle, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alignment(call.a.ptr))?;
            set_pref(pref.handle, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alignment(call.c))?;
            set_pref(pref.handle, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alignment(call.c))?;
        }
        let (alpha, beta) = (call.alpha, call.beta);
        // SAFETY: the handles are live; the pointers are device allocations
        // covering the operands, C and the epilogue's vector as the call
        // describes them; the workspace is ours and only used on our stream.
        unsafe {
            let heuristic = lt::get_matmul_algo_heuristic(
                self.cublaslt,
                desc.handle,
                a.handle,
                b.handle,
                c.handle,
                c.handle,
                pref.handle,
            )?;
            lt::matmul(
                self.cublaslt,
                desc.handle,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                call.b.ptr as *const c_void,
                a.handle,
                call.a.ptr as *const c_void,
                b.handle,
                call.c as *const c_void,
                c.handle,
                call.c as *mut c_void,
                c.handle,
                &heuristic.algo,
                self.workspace as *mut c_void,
                self.workspace_bytes,
                self.stream.cu_stream() as _,
            )
        }
    }
}

impl KernelBackend for CudaBackend {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn alloc(&self, bytes: usize) -> Result<u64> {
        self.bind()?;
        // SAFETY: stream-ordered allocation on our stream.
        let ptr = unsafe { result::malloc_async(self.stream.cu_stream(), bytes.max(1)) }
            .map_err(|e| driver(&format!("allocating {bytes} bytes"), e))?;
        if self.options.poison {
            // SAFETY: ptr covers `bytes` bytes.
            unsafe { result::memset_d8_async(ptr, 0xff, bytes, self.stream.cu_stream()) }
                .map_err(|e| driver("memset", e))?;
        }
        if let Some(r) = self.recording().as_mut() {
            r.alive.insert(ptr);
        }
        Ok(ptr)
    }

    fn free(&self, ptr: u64, _bytes: usize) {
        if let Some(r) = self.recording().as_mut()
            && !r.alive.remove(&ptr)
        {
            r.refuse("memory allocated before the recording was freed in it".into());
            r.deferred_frees.push(ptr);
            return;
        }
        if self.bind().is_ok() {
            // SAFETY: ptr came from `alloc` on this stream; work already queued
            // that reads it runs before the memory is reused.
            let _ = unsafe { result::free_async(ptr, self.stream.cu_stream()) };
        }
    }

    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.refuse_while_recording("a host-to-device copy")?;
        self.bind()?;
        // SAFETY: dst covers src.len() bytes; the stream is synchronised before
        // returning, so src outlives the copy.
        unsafe {
            result::memcpy_htod_async(dst, src, self.stream.cu_stream()).map_err(|e| driver("copy to device", e))?;
            result::stream::synchronize(self.stream.cu_stream()).map_err(|e| driver("copy to device", e))
        }
    }

    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.refuse_while_recording("a device-to-host copy")?;
        self.bind()?;
        // SAFETY: src covers dst.len() bytes; synchronised before returning.
        unsafe {
            result::memcpy_dtoh_async(dst, src, self.stream.cu_stream()).map_err(|e| driver("copy to host", e))?;
            result::stream::synchronize(self.stream.cu_stream()).map_err(|e| driver("copy to host", e))
        }
    }

    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<()> {
        self.bind()?;
        // SAFETY: both cover `bytes` bytes.
        unsafe { result::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream()) }
            .map_err(|e| driver("device copy", e))
    }

    fn memset_zero(&self, dst: u64, bytes: usize) -> Result<()> {
        self.bind()?;
        // SAFETY: dst covers `bytes` bytes.
        unsafe { result::memset_d8_async(dst, 0, bytes, self.stream.cu_stream()) }.map_err(|e| driver("memset", e))
    }

    fn launch(&self, launch: &Launch) -> Result<()> {
        self.bind()?;
        let f = self.function(launch.kernel, launch.shared_bytes)?;
        // The driver reads each parameter through a pointer to its value; it
        // does not write through them.
        let mut params: Vec<*mut c_void> = launch.args.iter().map(|a| a.value_ptr() as *mut c_void).collect();
        let [gx, gy, gz] = launch.grid;
        let [bx, by, bz] = launch.block;
        // SAFETY: the launch code that built this description passes the
        // kernel's parameters in order, with device pointers of this context.
        unsafe {
            result::launch_kernel(
                f,
                (gx, gy, gz),
                (bx, by, bz),
                launch.shared_bytes,
                self.stream.cu_stream(),
                &mut params,
            )
        }
        .map_err(|e| driver(&format!("launching {}", describe(launch)), e))?;
        self.checked(|| describe(launch))
    }

    fn gemm(&self, call: &GemmCall) -> Result<()> {
        self.bind()?;
        if call.epilogue != GemmEpilogue::None {
            call.check_epilogue()?;
            let (dtype, compute) = lt_data_type(call.dtype, self.options.tf32)?;
            self.gemm_lt(call, dtype, compute).map_err(|e| Error::Device(format!("{}: {e}", describe_gemm(call))))?;
            return self.checked(|| describe_gemm(call));
        }
        let (dtype, compute) = data_type(call.dtype, self.options.tf32)?;
        let op =
            |t: bool| if t { cublas::cublasOperation_t::CUBLAS_OP_T } else { cublas::cublasOperation_t::CUBLAS_OP_N };
        let int = |v: usize, what: &str| {
            i32::try_from(v).map_err(|_| Error::invalid("gemm", format!("{what} = {v} exceeds cuBLAS's 32-bit limit")))
        };
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: pass B as the first
        // operand and A as the second; each row-major operand read as
        // column-major is already its own transpose.
        let (alpha, beta) = (call.alpha, call.beta);
        // SAFETY: the pointers are device allocations covering the operands
        // as described by the call.
        unsafe {
            cudarc::cublas::result::gemm_strided_batched_ex(
                self.cublas,
                op(call.b.transposed),
                op(call.a.transposed),
                int(call.n, "n")?,
                int(call.m, "m")?,
                int(call.k, "k")?,
                &alpha as *const f32 as *const c_void,
                call.b.ptr as *const c_void,
                dtype,
                int(call.b.ld, "ldb")?,
                call.b.batch_stride as i64,
                call.a.ptr as *const c_void,
                dtype,
                int(call.a.ld, "lda")?,
                call.a.batch_stride as i64,
                &beta as *const f32 as *const c_void,
                call.c as *mut c_void,
                dtype,
                int(call.ldc, "ldc")?,
                call.c_batch_stride as i64,
                int(call.batch, "batch")?,
                compute,
                cublas::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| Error::Device(format!("{}: {e}", describe_gemm(call))))?;
        self.checked(|| describe_gemm(call))
    }

    fn synchronize(&self) -> Result<()> {
        self.refuse_while_recording("a wait for the device")?;
        self.bind()?;
        // SAFETY: our stream.
        unsafe { result::stream::synchronize(self.stream.cu_stream()) }.map_err(|e| driver("synchronize", e))
    }

    /// The total of cuMemGetInfo; None if the driver does not answer.
    fn memory_bytes(&self) -> Option<u64> {
        self.ctx.mem_get_info().ok().map(|(_free, total)| total as u64)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn begin_capture(&self) -> Result<()> {
        let mut recording = self.recording();
        if recording.is_some() {
            return Err(Error::Device("CUDA: a graph is already being recorded".into()));
        }
        // A graph's memory comes from a pool of its own and stays reserved
        // to it: hand what the stream's pool keeps cached (the plain steps'
        // peak) back to the device first, or a step's memory is held twice.
        self.bind()?;
        // SAFETY: our stream and the device's default pool; after the wait
        // no queued work uses the memory trimmed.
        unsafe {
            result::stream::synchronize(self.stream.cu_stream()).map_err(|e| driver("synchronize", e))?;
            let pool =
                result::device::get_default_mem_pool(self.ctx.cu_device()).map_err(|e| driver("memory pool", e))?;
            result::mem_pool::trim_to(pool, 0).map_err(|e| driver("trimming the memory pool", e))?;
        }
        // Thread-local mode: other threads' unrelated CUDA calls (a data
        // loader's) do not invalidate the recording.
        self.stream
            .begin_capture(cu::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| driver("beginning a graph recording", e))?;
        *recording = Some(Recording::default());
        Ok(())
    }

    fn end_capture(&self) -> Result<Box<dyn DeviceGraph>> {
        let recording =
            self.recording().take().ok_or_else(|| Error::Device("CUDA: no graph is being recorded".into()))?;
        let graph = self.stream.end_capture(cu::CUgraphInstantiate_flags(0));
        let verdict = recording.verdict();
        recording.finish(self.stream.cu_stream());
        let graph = graph.map_err(|e| driver("ending a graph recording", e))?;
        if let Some(why) = verdict {
            return Err(Error::Device(format!("CUDA: the recorded graph cannot be replayed: {why}")));
        }
        let graph = graph.ok_or_else(|| Error::Device("CUDA: the recording holds no work".into()))?;
        Ok(Box::new(CudaStepGraph::new(graph)))
    }
}
