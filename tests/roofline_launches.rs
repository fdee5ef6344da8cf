//! `reclip speed --roofline` lists the launches of one training step; this
//! holds the list to what a step really issues: one bf16 step of a small
//! model on the emulator, its launches counted by kernel name (GEMMs, device
//! copies, memsets and uploads by kind), against the table for the same
//! model and shapes.

use reclip::core::{DType, Device, DeviceGraph, GemmCall, GpuDevice, KernelBackend, Launch, Result, Tensor, rng};
use reclip::model::roofline::{Kind, training_step};
use reclip::model::{Clip, ModelConfig};
use reclip::train::{AdamW, AdamWConfig, train_step};
use reclip_emu::Emulator;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

// Two blocks a tower, widths whose rows take the kernels' 16-byte forms, as
// ViT-B-16's do.
const SMALL: &str = r#"{
  "embed_dim": 32,
  "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32, "mlp_ratio": 4.0},
  "text_cfg": {"context_length": 16, "vocab_size": 96, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 4.0}
}"#;
const BATCH: usize = 4;
const TEXT_LEN: usize = 16;
const IMAGE: usize = 32;

/// An emulator that counts what it is asked to do, by the names the table uses.
struct Counting {
    inner: Emulator,
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Counting {
    fn count(&self, what: &str) {
        *self.counts.lock().unwrap().entry(what.to_string()).or_default() += 1;
    }
}

impl KernelBackend for Counting {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn alloc(&self, bytes: usize) -> Result<u64> {
        self.inner.alloc(bytes)
    }
    fn free(&self, ptr: u64, bytes: usize) {
        self.inner.free(ptr, bytes)
    }
    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.count("upload");
        self.inner.write(dst, src)
    }
    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.count("read");
        self.inner.read(src, dst)
    }
    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<()> {
        self.count("memcpy D2D");
        self.inner.copy(src, dst, bytes)
    }
    fn memset_zero(&self, dst: u64, bytes: usize) -> Result<()> {
        self.count("memset");
        self.inner.memset_zero(dst, bytes)
    }
    fn launch(&self, launch: &Launch) -> Result<()> {
        self.count(launch.kernel);
        self.inner.launch(launch)
    }
    fn gemm(&self, call: &GemmCall) -> Result<()> {
        self.count("gemm");
        self.inner.gemm(call)
    }
    fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn begin_capture(&self) -> Result<()> {
        self.inner.begin_capture()
    }
    fn end_capture(&self) -> Result<Box<dyn DeviceGraph>> {
        self.inner.end_capture()
    }
}

#[test]
fn the_roofline_lists_the_launches_a_bf16_step_makes() {
    let backend = Arc::new(Counting { inner: Emulator::new(4), counts: Mutex::default() });
    let device = Device::Gpu(GpuDevice::new(backend.clone()));
    let config = ModelConfig::from_json_str(SMALL).unwrap();
    let clip = Clip::new(config.clone(), 3, &device).unwrap();
    let mut optimizer = AdamW::new(&clip.params(), AdamWConfig::default()).unwrap();
    let images = Tensor::randn([BATCH, 3, IMAGE, IMAGE], 0.0, 1.0, DType::F32, &Device::Cpu, &mut rng(1)).unwrap();
    let ids: Vec<u32> = (0..BATCH * TEXT_LEN).map(|i| (i as u32 * 37) % 95 + 1).collect();
    let ids = Tensor::from_vec(ids, [BATCH, TEXT_LEN], &Device::Cpu).unwrap();
    // The first step also builds the optimizer's table: the table is of a
    // steady-state step.
    train_step(&clip, &mut optimizer, &images, &ids, DType::BF16, 1e-3).unwrap();
    backend.counts.lock().unwrap().clear();
    train_step(&clip, &mut optimizer, &images, &ids, DType::BF16, 1e-3).unwrap();
    let got = backend.counts.lock().unwrap().clone();

    let table = training_step(&config, IMAGE, BATCH, TEXT_LEN).unwrap();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for row in &table.rows {
        let name = match row.kind {
            Kind::Gemm => "gemm".to_string(),
            Kind::Upload => "upload".to_string(),
            _ => row.kernel.clone(),
        };
        *want.entry(name).or_default() += row.count;
    }
    let differ: Vec<String> = want
        .keys()
        .chain(got.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| format!("{k}: table {:?}, step {:?}", want.get(k), got.get(k)))
        .collect();
    assert!(differ.is_empty(), "the roofline and a real step differ:\n{}", differ.join("\n"));
}
