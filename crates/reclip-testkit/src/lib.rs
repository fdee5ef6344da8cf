//! Kernel test support.
//!
//! Every kernel test runs an op on the CPU (the reference) and on the device
//! under test, and compares: [`compare_with_cpu`]. The device under test is
//! the CPU emulator of the kernels unless `RECLIP_TEST_DEVICE=cuda` asks for
//! the GPU (as `tools/gpu-check.sh` does); either way, freshly allocated
//! device memory is filled with NaN first, so an output element a kernel
//! fails to write is reported.

use reclip_core::{DType, Device, GemmCall, GpuDevice, KernelBackend, Launch, Result, Tensor, rng};
use std::sync::{Arc, Mutex};

/// Seed of the emulator's barrier order; `RECLIP_EMU_SEED` overrides it to
/// reproduce a failure seen with another seed.
pub fn emulator_seed() -> u64 {
    std::env::var("RECLIP_EMU_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed)
}

/// The device kernel tests run on: `RECLIP_TEST_DEVICE` = `emu` (default) or `cuda`.
pub fn test_device() -> Device {
    match std::env::var("RECLIP_TEST_DEVICE").as_deref() {
        Ok("cuda") => cuda_test_device(),
        Ok("emu") | Err(_) => reclip_emu::Emulator::device(emulator_seed()),
        Ok(other) => panic!("RECLIP_TEST_DEVICE={other}: expected emu or cuda"),
    }
}

fn cuda_test_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        use reclip_core::GpuDevice;
        use std::sync::{Arc, OnceLock};
        static CUDA: OnceLock<Device> = OnceLock::new();
        CUDA.get_or_init(|| {
            let options = reclip_cuda::CudaOptions { tf32: false, poison: true };
            let backend = reclip_cuda::CudaBackend::new(0, options)
                .unwrap_or_else(|e| panic!("RECLIP_TEST_DEVICE=cuda but the GPU cannot be used: {e}"));
            Device::Gpu(GpuDevice::new(Arc::new(backend)))
        })
        .clone()
    }
    #[cfg(not(feature = "cuda"))]
    panic!("RECLIP_TEST_DEVICE=cuda needs a build with the `cuda` feature (tools/gpu-check.sh builds one)")
}

/// Element-wise tolerance: |got - expected| ≤ atol + rtol·|expected|.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Tolerance {
    pub fn new(rtol: f64, atol: f64) -> Self {
        Tolerance { rtol, atol }
    }

    /// Defaults for comparing a kernel with the CPU path: the two sum in
    /// different orders (f32), and bf16 results may round to neighbouring
    /// values after slightly different f32 intermediates.
    pub fn for_dtype(dtype: DType) -> Self {
        match dtype {
            DType::F32 => Tolerance::new(1e-4, 1e-5),
            DType::BF16 => Tolerance::new(1.6e-2, 1e-3),
            DType::F64 => Tolerance::new(1e-12, 1e-14),
            DType::U32 => Tolerance::new(0.0, 0.0),
        }
    }
}

fn multi_index(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = i % dims[d].max(1);
        i /= dims[d].max(1);
    }
    idx
}

/// Panics, listing the first mismatches with their indices, unless `got`
/// has `expected`'s shape and dtype and matches it within `tol`. NaN in
/// `got` never matches (unless expected there too).
pub fn assert_close(what: &str, expected: &Tensor, got: &Tensor, tol: Tolerance) {
    assert_eq!(expected.dims(), got.dims(), "{what}: shapes differ");
    assert_eq!(expected.dtype(), got.dtype(), "{what}: dtypes differ");
    let values = |t: &Tensor| -> Result<Vec<f64>> {
        if t.dtype() == DType::U32 {
            Ok(t.to_vec::<u32>()?.into_iter().map(f64::from).collect())
        } else {
            t.to_vec_f64()
        }
    };
    let e = values(expected).unwrap_or_else(|err| panic!("{what}: reading expected values: {err}"));
    let g = values(got).unwrap_or_else(|err| panic!("{what}: reading device values on {}: {err}", got.device()));
    let close = |a: f64, b: f64| if a.is_nan() { b.is_nan() } else { (a - b).abs() <= tol.atol + tol.rtol * a.abs() };
    let mut first = Vec::new();
    let mut count = 0;
    let mut worst = 0.0f64;
    for (i, (&a, &b)) in e.iter().zip(&g).enumerate() {
        if close(a, b) {
            continue;
        }
        count += 1;
        worst = worst.max(if b.is_nan() { f64::INFINITY } else { (a - b).abs() });
        if first.len() < 10 {
            first.push(format!("  at {:?}: expected {a:.7e}, got {b:.7e}", multi_index(i, expected.dims())));
        }
    }
    if count > 0 {
        panic!(
            "{what} on {}: {count} of {} elements differ from the CPU (rtol {}, atol {}, worst |diff| {worst:.3e}); first ones:\n{}",
            got.device(),
            e.len(),
            tol.rtol,
            tol.atol,
            first.join("\n")
        );
    }
}

/// Runs `f` on the CPU and on the device under test and checks that every
/// output agrees within its dtype's tolerance. `inputs` are CPU tensors;
/// they are copied to the device for the second run. Returns the device outputs.
pub fn compare_with_cpu<F>(what: &str, inputs: &[&Tensor], f: F) -> Vec<Tensor>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    compare_with_cpu_tol(what, inputs, None, f)
}

/// [`compare_with_cpu`] with an explicit tolerance for every output.
pub fn compare_with_cpu_tol<F>(what: &str, inputs: &[&Tensor], tol: Option<Tolerance>, f: F) -> Vec<Tensor>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    compare_on(&test_device(), what, inputs, tol, f)
}

/// [`compare_with_cpu`], returning the names of the kernels the device run
/// launched, in order: for tests of which form of a kernel the launch code
/// picks (a vector form for aligned rows, the scalar form otherwise);
/// `tol` as in [`compare_with_cpu_tol`].
pub fn compare_with_cpu_kernels<F>(what: &str, inputs: &[&Tensor], tol: Option<Tolerance>, f: F) -> Vec<&'static str>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let log = Arc::new(LaunchLog { device: test_device(), kernels: Mutex::new(Vec::new()) });
    compare_on(&Device::Gpu(GpuDevice::new(log.clone())), what, inputs, tol, f);
    log.kernels.lock().expect("launch log").clone()
}

/// Asserts that `kernels` (from [`compare_with_cpu_kernels`]) include each
/// kernel of `bases` in its vector form `{base}_vec_{dtype}` when `vector`,
/// else in its scalar form `{base}_{dtype}`, and never in the other form.
pub fn assert_forms(what: &str, kernels: &[&str], bases: &[&str], dtype: DType, vector: bool) {
    for base in bases {
        let (vector_name, scalar_name) = (format!("{base}_vec_{dtype}"), format!("{base}_{dtype}"));
        let (want, other) = if vector { (&vector_name, &scalar_name) } else { (&scalar_name, &vector_name) };
        assert!(
            kernels.contains(&want.as_str()) && !kernels.contains(&other.as_str()),
            "{what}: expected {want} and not {other}; launched {kernels:?}"
        );
    }
}

/// A backend that records the name of each kernel it launches and passes
/// everything to the device under test.
struct LaunchLog {
    device: Device,
    kernels: Mutex<Vec<&'static str>>,
}

impl LaunchLog {
    fn inner(&self) -> &dyn KernelBackend {
        self.device.gpu().expect("the device under test is a GPU device").backend()
    }
}

impl KernelBackend for LaunchLog {
    fn name(&self) -> String {
        self.inner().name()
    }
    fn alloc(&self, bytes: usize) -> Result<u64> {
        self.inner().alloc(bytes)
    }
    fn free(&self, ptr: u64, bytes: usize) {
        self.inner().free(ptr, bytes)
    }
    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.inner().write(dst, src)
    }
    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.inner().read(src, dst)
    }
    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<()> {
        self.inner().copy(src, dst, bytes)
    }
    fn memset_zero(&self, dst: u64, bytes: usize) -> Result<()> {
        self.inner().memset_zero(dst, bytes)
    }
    fn launch(&self, launch: &Launch) -> Result<()> {
        self.kernels.lock().expect("launch log").push(launch.kernel);
        self.inner().launch(launch)
    }
    fn gemm(&self, call: &GemmCall) -> Result<()> {
        self.inner().gemm(call)
    }
    fn synchronize(&self) -> Result<()> {
        self.inner().synchronize()
    }
    fn memory_bytes(&self) -> Option<u64> {
        self.inner().memory_bytes()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self.inner().as_any()
    }
}

fn compare_on<F>(device: &Device, what: &str, inputs: &[&Tensor], tol: Option<Tolerance>, f: F) -> Vec<Tensor>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let cpu_inputs: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    let expected = f(&cpu_inputs).unwrap_or_else(|e| panic!("{what} on the CPU: {e}"));
    let dev_inputs: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_device(device))
        .collect::<Result<_>>()
        .unwrap_or_else(|e| panic!("{what}: copying inputs to {device}: {e}"));
    let got = f(&dev_inputs).unwrap_or_else(|e| panic!("{what} on {device}: {e}"));
    assert_eq!(expected.len(), got.len(), "{what}: output counts differ");
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert!(g.device().same(device), "{what}: output {i} is on {}, not {device}", g.device());
        assert_close(&format!("{what} (output {i})"), e, g, tol.unwrap_or(Tolerance::for_dtype(e.dtype())));
    }
    got
}

/// `t` as a view one element into a larger storage, on `t`'s device: on a
/// GPU its rows start 4 (f32) or 2 (bf16) bytes past a 16-byte boundary, so
/// kernels with a vector form must fall back to their scalar form.
pub fn misaligned(t: &Tensor) -> Result<Tensor> {
    let flat = t.reshape([t.elem_count()])?;
    let padded = Tensor::concat(&[&flat.narrow(0, 0, 1)?, &flat], 0)?;
    padded.narrow(0, 1, t.elem_count())?.reshape(t.dims())
}

/// A CPU tensor of normally distributed values in `dtype`.
pub fn randn(dims: &[usize], dtype: DType, seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, dtype, &Device::Cpu, &mut rng(seed)).expect("random tensor")
}

/// The devices benches measure: `RECLIP_BENCH_DEVICE` = `cpu` (default),
/// `cuda`, or `all` (both). The emulator is never benched: it measures
/// nothing about a GPU.
pub fn bench_devices() -> Vec<Device> {
    let cuda =
        || reclip_cuda::cuda_device(0, false).unwrap_or_else(|e| panic!("RECLIP_BENCH_DEVICE asks for CUDA: {e}"));
    match std::env::var("RECLIP_BENCH_DEVICE").as_deref() {
        Ok("cuda") => vec![cuda()],
        Ok("all") => vec![Device::Cpu, cuda()],
        Ok("cpu") | Err(_) => vec![Device::Cpu],
        Ok(other) => panic!("RECLIP_BENCH_DEVICE={other}: expected cpu, cuda or all"),
    }
}

/// A short label for bench names: "cpu" or "cuda".
pub fn device_label(device: &Device) -> &'static str {
    if device.is_cpu() { "cpu" } else { "cuda" }
}
