//! Training steps on the emulator: a small model, its batches, and an
//! emulator that counts what the host asks of it.

use reclip::core::{
    DType, Device, DeviceGraph, Error, GemmCall, GpuDevice, KernelBackend, Launch, Result, Tensor, rng,
};
use reclip_emu::{Emulator, Transfers};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One block per tower and a 96-token vocabulary: a fast model to emulate.
pub const SMALL: &str = r#"{
  "embed_dim": 16,
  "vision_cfg": {"image_size": 24, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32, "mlp_ratio": 2.0},
  "text_cfg": {"context_length": 12, "vocab_size": 96, "width": 64, "heads": 2, "layers": 1, "mlp_ratio": 2.0}
}"#;

pub const BATCH: usize = 6;
pub const TEXT_LEN: usize = 9;

/// Host tensors of `batch` pairs, as the loader makes them.
pub fn batch_of(batch: usize, text_len: usize, size: usize, seed: u64) -> (Tensor, Tensor) {
    let images = Tensor::randn([batch, 3, size, size], 0.0, 1.0, DType::F32, &Device::Cpu, &mut rng(seed)).unwrap();
    let ids: Vec<u32> = (0..batch * text_len).map(|i| ((i as u64 * 31 + seed * 7) % 95 + 1) as u32).collect();
    (images, Tensor::from_vec(ids, [batch, text_len], &Device::Cpu).unwrap())
}

/// A batch of [`BATCH`] pairs of [`TEXT_LEN`] tokens.
pub fn batch(size: usize, seed: u64) -> (Tensor, Tensor) {
    batch_of(BATCH, TEXT_LEN, size, seed)
}

/// Bytes of one step's uploads of a [`batch`]: the images, then for the
/// token ids and the end-of-text positions each one transfer of ids, their
/// order by target and the targets' starts.
pub fn batch_bytes(size: usize, vocab: usize) -> u64 {
    let images = BATCH * 3 * size * size;
    let tokens = 2 * BATCH * TEXT_LEN + vocab + 1;
    let eot = 2 * BATCH + BATCH * TEXT_LEN + 1;
    4 * (images + tokens + eot) as u64
}

pub fn delta(after: Transfers, before: Transfers) -> Transfers {
    Transfers {
        writes: after.writes - before.writes,
        write_bytes: after.write_bytes - before.write_bytes,
        reads: after.reads - before.reads,
        read_bytes: after.read_bytes - before.read_bytes,
    }
}

/// What [`Counting`] counts besides kernels, which it counts by name.
pub const GEMM: &str = "gemm";
pub const DEVICE_COPY: &str = "memcpy D2D";
pub const MEMSET: &str = "memset";
pub const UPLOAD: &str = "upload";
pub const READ: &str = "read";

/// The emulator, counting what the host queues on it (run, or recorded
/// while recording); with `refuse_graphs`, every recording runs to its end
/// and is then refused, as an instantiation that fails would be.
pub struct Counting {
    pub emulator: Arc<Emulator>,
    counts: Mutex<BTreeMap<String, u64>>,
    refuse_graphs: bool,
}

impl Counting {
    pub fn device(seed: u64, refuse_graphs: bool) -> (Device, Arc<Counting>) {
        let emulator = Arc::new(Emulator::new(seed));
        let counting = Arc::new(Counting { emulator, counts: Mutex::default(), refuse_graphs });
        (Device::Gpu(GpuDevice::new(counting.clone())), counting)
    }

    /// Everything counted so far: kernels by name, the rest by the names above.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.counts.lock().unwrap().clear();
    }

    /// (kernel launches, GEMMs) so far.
    pub fn queued(&self) -> (u64, u64) {
        let counts = self.counts();
        let others = [GEMM, DEVICE_COPY, MEMSET, UPLOAD, READ];
        let launches = counts.iter().filter(|(k, _)| !others.contains(&k.as_str())).map(|(_, n)| n).sum();
        (launches, counts.get(GEMM).copied().unwrap_or(0))
    }

    fn count(&self, what: &str) {
        *self.counts.lock().unwrap().entry(what.to_string()).or_default() += 1;
    }
}

impl KernelBackend for Counting {
    fn name(&self) -> String {
        self.emulator.name()
    }
    fn alloc(&self, bytes: usize) -> Result<u64> {
        self.emulator.alloc(bytes)
    }
    fn free(&self, ptr: u64, bytes: usize) {
        self.emulator.free(ptr, bytes)
    }
    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.count(UPLOAD);
        self.emulator.write(dst, src)
    }
    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.count(READ);
        self.emulator.read(src, dst)
    }
    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<()> {
        self.count(DEVICE_COPY);
        self.emulator.copy(src, dst, bytes)
    }
    fn memset_zero(&self, dst: u64, bytes: usize) -> Result<()> {
        self.count(MEMSET);
        self.emulator.memset_zero(dst, bytes)
    }
    fn launch(&self, launch: &Launch) -> Result<()> {
        self.count(launch.kernel);
        self.emulator.launch(launch)
    }
    fn gemm(&self, call: &GemmCall) -> Result<()> {
        self.count(GEMM);
        self.emulator.gemm(call)
    }
    fn synchronize(&self) -> Result<()> {
        self.emulator.synchronize()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn begin_capture(&self) -> Result<()> {
        self.emulator.begin_capture()
    }
    fn end_capture(&self) -> Result<Box<dyn DeviceGraph>> {
        let graph = self.emulator.end_capture()?;
        if self.refuse_graphs {
            return Err(Error::Device("counting emulator: the graph cannot be instantiated".into()));
        }
        Ok(graph)
    }
}
