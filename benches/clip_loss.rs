//! The fused contrastive losses, CLIP's softmax loss (`clip_loss`) and
//! SigLIP's sigmoid loss (`siglip_loss`): forward, and forward + backward,
//! at B ∈ {1024, 8192, 32768} and d ∈ {512, 768} (the sigmoid loss at 512). Throughput is in FLOP/s
//! (criterion's "elem/s" counts FLOPs: 2 per multiply-add of the B×B×d
//! products the passes run: the softmax loss two forward and four backward,
//! the sigmoid loss one forward and four backward; on a GPU, d > 512
//! recomputes the logits once more per backward sweep, which is not counted).
//!
//! Before timing, each configuration runs forward + backward once and prints
//! the peak memory it allocated beyond its inputs: heap bytes on the CPU
//! (a counting allocator), device bytes on a GPU (a counting backend), next to
//! the size a B×B f32 logits matrix would have.
//!
//! The CPU runs B ≤ 8192: one CPU iteration at B = 32768, d = 768 performs
//! 10 TFLOP, minutes on a workstation.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reclip::core::{DType, Device, GemmCall, GpuDevice, KernelBackend, Launch, Result, Tensor, rng};
use reclip::loss::{clip_loss_backward, clip_loss_forward, siglip_loss_backward, siglip_loss_forward};
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes currently allocated and the peak since the last reset.
struct Usage {
    current: AtomicUsize,
    peak: AtomicUsize,
}

impl Usage {
    const fn new() -> Self {
        Usage { current: AtomicUsize::new(0), peak: AtomicUsize::new(0) }
    }

    fn add(&self, bytes: usize) {
        let now = self.current.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn sub(&self, bytes: usize) {
        self.current.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Starts a measurement; returns the baseline.
    fn reset(&self) -> usize {
        let now = self.current.load(Ordering::Relaxed);
        self.peak.store(now, Ordering::Relaxed);
        now
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

struct CountingAlloc {
    usage: Usage,
}

// SAFETY: every call is forwarded to mimalloc unchanged; only counters are added.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.usage.add(layout.size());
        // SAFETY: forwarded from the caller.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.usage.sub(layout.size());
        // SAFETY: forwarded from the caller.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.usage.add(new_size);
        self.usage.sub(layout.size());
        // SAFETY: forwarded from the caller.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static HEAP: CountingAlloc = CountingAlloc { usage: Usage::new() };

/// A GPU backend that counts the device memory allocated through it.
struct CountingBackend {
    inner: GpuDevice,
    usage: Arc<Usage>,
}

impl KernelBackend for CountingBackend {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn alloc(&self, bytes: usize) -> Result<u64> {
        let ptr = self.inner.backend().alloc(bytes)?;
        self.usage.add(bytes);
        Ok(ptr)
    }
    fn free(&self, ptr: u64, bytes: usize) {
        self.usage.sub(bytes);
        self.inner.backend().free(ptr, bytes)
    }
    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.inner.backend().write(dst, src)
    }
    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.inner.backend().read(src, dst)
    }
    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<()> {
        self.inner.backend().copy(src, dst, bytes)
    }
    fn memset_zero(&self, dst: u64, bytes: usize) -> Result<()> {
        self.inner.backend().memset_zero(dst, bytes)
    }
    fn launch(&self, launch: &Launch) -> Result<()> {
        self.inner.launch(launch)
    }
    fn gemm(&self, call: &GemmCall) -> Result<()> {
        self.inner.gemm(call)
    }
    fn synchronize(&self) -> Result<()> {
        self.inner.backend().synchronize()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The device to measure on, and the counter of its memory.
fn counted(device: &Device) -> (Device, Arc<Usage>) {
    match device {
        Device::Cpu => (Device::Cpu, Arc::new(Usage::new())),
        Device::Gpu(g) => {
            let usage = Arc::new(Usage::new());
            let backend = CountingBackend { inner: g.clone(), usage: usage.clone() };
            (Device::Gpu(GpuDevice::new(Arc::new(backend))), usage)
        }
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// A loss's forward and its forward + backward on (image, text, t, bias,
/// upstream gradient), and how many B×B×d products each runs.
struct Loss {
    name: &'static str,
    forward: fn(&[Tensor]) -> Tensor,
    forward_backward: fn(&[Tensor]) -> Tensor,
    forward_products: u64,
    backward_products: u64,
    /// The embedding widths measured.
    widths: &'static [usize],
}

const LOSSES: [Loss; 2] = [
    Loss {
        name: "clip_loss",
        forward: |x| clip_loss_forward(&x[0], &x[1], &x[2]).unwrap().0,
        forward_backward: |x| {
            let (_, saved) = clip_loss_forward(&x[0], &x[1], &x[2]).unwrap();
            clip_loss_backward(&saved, &x[4]).unwrap().image
        },
        forward_products: 2,
        backward_products: 4,
        widths: &[512, 768],
    },
    Loss {
        name: "siglip_loss",
        forward: |x| siglip_loss_forward(&x[0], &x[1], &x[2], &x[3]).unwrap().0,
        forward_backward: |x| {
            let (_, saved) = siglip_loss_forward(&x[0], &x[1], &x[2], &x[3]).unwrap();
            siglip_loss_backward(&saved, &x[4]).unwrap().image
        },
        forward_products: 1,
        backward_products: 4,
        // ViT-B's width only: the kernels are the softmax loss's tiles, and
        // the GPU check's time for this binary is shared by both losses.
        widths: &[512],
    },
];

fn losses(c: &mut Criterion) {
    for loss in &LOSSES {
        let mut group = c.benchmark_group(loss.name);
        group.sample_size(10);
        for plain in reclip_testkit::bench_devices() {
            let (device, gpu_usage) = counted(&plain);
            let label = reclip_testkit::device_label(&device);
            let sizes: &[usize] = if device.is_cpu() { &[1024, 8192] } else { &[1024, 8192, 32768] };
            let dtypes: &[DType] = if device.is_cpu() { &[DType::F32] } else { &[DType::F32, DType::BF16] };
            for &b in sizes {
                for &d in loss.widths {
                    for &dtype in dtypes {
                        let mut r = rng(b as u64 + d as u64);
                        let image = Tensor::randn([b, d], 0.0, 1.0, dtype, &device, &mut r).unwrap();
                        let text = Tensor::randn([b, d], 0.0, 1.0, dtype, &device, &mut r).unwrap();
                        let scalar = |v: f64| Tensor::scalar(v, DType::F32, &device).unwrap();
                        let x = [image, text, scalar((1.0f64 / 0.07).ln()), scalar(-10.0), scalar(1.0)];
                        device.synchronize().unwrap();

                        let usage: &Usage = if device.is_cpu() { &HEAP.usage } else { &gpu_usage };
                        let base = usage.reset();
                        black_box((loss.forward_backward)(&x));
                        device.synchronize().unwrap();
                        let case = format!("{dtype}/B{b}_d{d}");
                        eprintln!(
                            "{}/{label}/{case}: peak {:.1} MiB beyond the inputs (a B×B f32 matrix: {:.0} MiB)",
                            loss.name,
                            mib(usage.peak() - base),
                            mib(b * b * 4),
                        );

                        let product = 2 * (b * b * d) as u64;
                        group.throughput(Throughput::Elements(loss.forward_products * product));
                        group.bench_function(BenchmarkId::new(format!("{label}/forward"), &case), |bench| {
                            bench.iter(|| {
                                black_box((loss.forward)(&x));
                                device.synchronize().unwrap();
                            })
                        });
                        let all = loss.forward_products + loss.backward_products;
                        group.throughput(Throughput::Elements(all * product));
                        group.bench_function(BenchmarkId::new(format!("{label}/forward_backward"), &case), |bench| {
                            bench.iter(|| {
                                black_box((loss.forward_backward)(&x));
                                device.synchronize().unwrap();
                            })
                        });
                    }
                }
            }
        }
        group.finish();
    }
}

criterion_group!(benches, losses);
criterion_main!(benches);
