//! reclip's CPU emulator of its CUDA kernels, as a [`KernelBackend`].
//!
//! The kernels of `kernels/` are compiled as host C++ (see `build.rs` and
//! `csrc/`); each CUDA thread runs as a fiber, barriers switch fibers in an
//! order shuffled by a seed, and shared memory starts out as NaN. Device
//! memory is host memory (filled with NaN bytes when allocated, so that an
//! output element a kernel forgets to write shows up), and GEMM runs on the
//! CPU GEMM, with the bias and bias-gradient epilogues that cuBLASLt fuses
//! into it on a GPU. Launches and GEMM calls come from the same Rust code as
//! on a GPU, so their shapes are exercised too.
//!
//! It records graphs as CUDA does (`graph`): work queued while recording is
//! kept and run at each replay, under CUDA's rules on what may be recorded.
//!
//! The emulator is a test device: it is slow, runs one launch at a time per
//! process, and cannot see races between threads that never meet at a
//! barrier, timing, or memory coalescing (see ARCHITECTURE.md).

mod graph;

use graph::{EmulatorGraph, Op, Recording};
use reclip_core::{Device, DeviceGraph, Error, GemmCall, GpuDevice, KernelBackend, Launch, Result};
use std::alloc::{Layout, alloc, dealloc};
use std::ffi::{CString, c_char, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

unsafe extern "C" {
    fn reclip_emu_launch(
        name: *const c_char,
        grid: *const u32,
        block: *const u32,
        shared_bytes: u32,
        args: *mut *mut c_void,
        arg_sizes: *const u64,
        arg_count: u32,
        seed: u64,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
}

/// The scheduler's state is process-global: launches run one at a time.
static LAUNCH_LOCK: Mutex<()> = Mutex::new(());

const ALIGN: usize = 256;

/// An emulated GPU. Each launch derives its barrier-order seed from the
/// emulator's seed and a launch counter, so runs are reproducible.
pub struct Emulator {
    seed: u64,
    launches: Arc<AtomicU64>,
    writes: Counter,
    reads: Counter,
    recording: Mutex<Option<Recording>>,
}

/// Host↔device copies so far: on a GPU each one waits for the device, so
/// tests count them (a training step must make none but its batch's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfers {
    /// Host to device.
    pub writes: u64,
    pub write_bytes: u64,
    /// Device to host.
    pub reads: u64,
    pub read_bytes: u64,
}

#[derive(Default)]
struct Counter {
    copies: AtomicU64,
    bytes: AtomicU64,
}

impl Counter {
    fn add(&self, bytes: usize) {
        self.copies.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        (self.copies.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }
}

impl Emulator {
    pub fn new(seed: u64) -> Self {
        Emulator {
            seed,
            launches: Arc::new(AtomicU64::new(0)),
            writes: Counter::default(),
            reads: Counter::default(),
            recording: Mutex::new(None),
        }
    }

    /// The host↔device copies made through this emulator so far.
    pub fn transfers(&self) -> Transfers {
        let ((writes, write_bytes), (reads, read_bytes)) = (self.writes.get(), self.reads.get());
        Transfers { writes, write_bytes, reads, read_bytes }
    }

    /// A reclip [`Device`] backed by a new emulator.
    pub fn device(seed: u64) -> Device {
        Device::Gpu(GpuDevice::new(Arc::new(Emulator::new(seed))))
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn recording(&self) -> MutexGuard<'_, Option<Recording>> {
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `op` when recording; returns it to be run otherwise.
    fn record(&self, op: Op) -> Option<Op> {
        match self.recording().as_mut() {
            Some(r) => {
                r.ops.push(op);
                None
            }
            None => Some(op),
        }
    }

    /// An error when recording: `what` waits for the device or moves host data.
    fn refuse_while_recording(&self, what: &str) -> Result<()> {
        match self.recording().as_mut() {
            Some(r) => {
                let problem = format!("{what} while recording a graph");
                r.refuse(problem.clone());
                Err(Error::Device(format!("emulator: {problem}")))
            }
            None => Ok(()),
        }
    }

    /// Runs one launch; its barrier-order seed comes from `seed` and the
    /// launch counter.
    fn run_launch(seed: u64, launches: &AtomicU64, launch: &Launch) -> Result<()> {
        // The kernel's trampoline reads each argument through a pointer to
        // its value, as cuLaunchKernel does; the sizes are checked against
        // the kernel's signature.
        let mut ptrs: Vec<*mut c_void> = launch.args.iter().map(|a| a.value_ptr() as *mut c_void).collect();
        let sizes: Vec<u64> = launch.args.iter().map(|a| a.size() as u64).collect();
        let name = CString::new(launch.kernel).map_err(|_| Error::Device("kernel name contains NUL".into()))?;
        let n = launches.fetch_add(1, Ordering::Relaxed);
        let seed = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut err = vec![0u8; 1024];
        let _guard = LAUNCH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: every pointer argument is an emulator allocation (the
        // launch code takes them from tensors on this device); the argument
        // count and sizes are checked against the kernel's signature.
        let rc = unsafe {
            reclip_emu_launch(
                name.as_ptr(),
                launch.grid.as_ptr(),
                launch.block.as_ptr(),
                launch.shared_bytes,
                ptrs.as_mut_ptr(),
                sizes.as_ptr(),
                sizes.len() as u32,
                seed,
                err.as_mut_ptr() as *mut c_char,
                err.len(),
            )
        };
        if rc != 0 {
            let end = err.iter().position(|&b| b == 0).unwrap_or(err.len());
            return Err(Error::Device(format!("emulator: {}", String::from_utf8_lossy(&err[..end]))));
        }
        Ok(())
    }
}

fn layout(bytes: usize) -> Layout {
    Layout::from_size_align(bytes.max(1), ALIGN).expect("allocation size overflows")
}

impl KernelBackend for Emulator {
    fn name(&self) -> String {
        format!("emulator(seed={})", self.seed)
    }

    fn alloc(&self, bytes: usize) -> Result<u64> {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc(layout(bytes)) };
        if p.is_null() {
            return Err(Error::Device(format!("emulator: cannot allocate {bytes} bytes")));
        }
        // All-ones bytes are NaN in f32 and bf16: unwritten outputs show up.
        // SAFETY: p points to at least `bytes` writable bytes.
        unsafe { std::ptr::write_bytes(p, 0xff, bytes) };
        if let Some(r) = self.recording().as_mut() {
            // A graph's memory is poisoned again at each replay.
            r.ops.push(Op::Fill { dst: p as u64, bytes, byte: 0xff });
            r.allocations.insert(p as u64, (bytes, true));
        }
        Ok(p as u64)
    }

    fn free(&self, ptr: u64, bytes: usize) {
        if let Some(r) = self.recording().as_mut() {
            match r.allocations.get_mut(&ptr) {
                // The graph's own: it keeps the address until it is dropped.
                Some((_, alive)) => {
                    *alive = false;
                    return;
                }
                None => r.refuse("memory allocated before the recording was freed in it".into()),
            }
        }
        // SAFETY: ptr came from `alloc` with the same size.
        unsafe { dealloc(ptr as *mut u8, layout(bytes)) }
    }

    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.refuse_while_recording("a host-to-device copy")?;
        self.writes.add(src.len());
        // SAFETY: dst is an emulator allocation of at least src.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.refuse_while_recording("a device-to-host copy")?;
        self.reads.add(dst.len());
        // SAFETY: src is an emulator allocation of at least dst.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<()> {
        let Some(Op::Copy { src, dst, bytes }) = self.record(Op::Copy { src, dst, bytes }) else { return Ok(()) };
        // SAFETY: both are emulator allocations covering `bytes`; memmove
        // semantics make overlap harmless.
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, bytes) };
        Ok(())
    }

    fn memset_zero(&self, dst: u64, bytes: usize) -> Result<()> {
        let Some(Op::Fill { dst, bytes, .. }) = self.record(Op::Fill { dst, bytes, byte: 0 }) else { return Ok(()) };
        // SAFETY: dst is an emulator allocation of at least `bytes`.
        unsafe { std::ptr::write_bytes(dst as *mut u8, 0, bytes) };
        Ok(())
    }

    fn launch(&self, launch: &Launch) -> Result<()> {
        if let Some(r) = self.recording().as_mut() {
            let Launch { kernel, grid, block, shared_bytes, args } = *launch;
            r.ops.push(Op::Launch { kernel, grid, block, shared_bytes, args: args.to_vec() });
            return Ok(());
        }
        Emulator::run_launch(self.seed, &self.launches, launch)
    }

    fn gemm(&self, call: &GemmCall) -> Result<()> {
        call.check_epilogue()?;
        let Some(Op::Gemm(call)) = self.record(Op::Gemm(*call)) else { return Ok(()) };
        let call = &call;
        // SAFETY: the call's pointers are emulator (host) allocations covering
        // the operands and the epilogue's vector, as built by the GEMM code.
        unsafe { reclip_core::cpu::gemm::gemm_host(call) }
    }

    fn synchronize(&self) -> Result<()> {
        self.refuse_while_recording("a wait for the device")
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn begin_capture(&self) -> Result<()> {
        let mut recording = self.recording();
        if recording.is_some() {
            return Err(Error::Device("emulator: a graph is already being recorded".into()));
        }
        *recording = Some(Recording::default());
        Ok(())
    }

    fn end_capture(&self) -> Result<Box<dyn DeviceGraph>> {
        let recording =
            self.recording().take().ok_or_else(|| Error::Device("emulator: no graph is being recorded".into()))?;
        Ok(Box::new(EmulatorGraph::new(recording, self.seed, self.launches.clone())?))
    }
}
