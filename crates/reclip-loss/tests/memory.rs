//! The CPU path never holds the B×B logits: at B = 16384, d = 64 (B×B f32
//! would be 1 GiB), the peak of bytes allocated during forward and backward,
//! beyond the inputs, stays far below it. A counting global allocator (this
//! test file is its own binary) records every allocation.

use reclip_core::{DType, Device, Tensor};
use reclip_loss::{clip_loss_backward, clip_loss_forward};
use reclip_testkit::randn;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting {
    current: AtomicUsize,
    peak: AtomicUsize,
}

impl Counting {
    fn grow(&self, bytes: usize) {
        let now = self.current.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Restarts the peak at the current usage, which it returns.
    fn reset_peak(&self) -> usize {
        let now = self.current.load(Ordering::Relaxed);
        self.peak.store(now, Ordering::Relaxed);
        now
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.grow(layout.size());
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.current.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.grow(layout.size());
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Old and new blocks may both exist while the data moves.
        self.grow(new_size);
        self.current.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting { current: AtomicUsize::new(0), peak: AtomicUsize::new(0) };

const MIB: usize = 1 << 20;

#[test]
fn no_b_by_b_buffer_at_b_16384() {
    let (b, d) = (16384, 64);
    let image = randn(&[b, d], DType::F32, 1);
    let text = randn(&[b, d], DType::F32, 2);
    let t = Tensor::scalar(2.659, DType::F32, &Device::Cpu).unwrap();
    let one = Tensor::scalar(1.0, DType::F32, &Device::Cpu).unwrap();

    // The counter sees allocations: one B×B/16 f32 buffer shows up in full.
    let base = ALLOC.reset_peak();
    drop(std::hint::black_box(vec![0.0f32; b * b / 16]));
    assert!(ALLOC.peak.load(Ordering::Relaxed) - base >= b * b / 16 * 4);

    let base = ALLOC.reset_peak();
    let (loss, saved) = clip_loss_forward(&image, &text, &t).unwrap();
    let forward_peak = ALLOC.peak.load(Ordering::Relaxed) - base;
    let grads = clip_loss_backward(&saved, &one).unwrap();
    let peak = ALLOC.peak.load(Ordering::Relaxed) - base;

    // What must exist at once (4 MiB each): the two normalised copies, one
    // side's gradient of its normalised features, the two gradients of the
    // features; and each thread's tile (64 × 256 logits, 64 × d sums).
    let inputs = 2 * b * d * 4;
    let logits = b * b * 4;
    eprintln!(
        "B={b} d={d}: inputs {} MiB; peak beyond them: forward {:.1} MiB, forward + backward {:.1} MiB; B×B f32 would be {} MiB",
        inputs / MIB,
        forward_peak as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        logits / MIB
    );
    assert!(peak < 48 * MIB, "peak {peak} bytes: something of O(B²) size was allocated");
    assert!(peak < logits / 16);

    let value = loss.to_scalar().unwrap();
    // Random unit vectors in 64 dimensions at scale 14.3: logits of spread
    // ~1.8, so the loss is close to ln B (9.70) plus a little.
    assert!(value.is_finite() && (9.0..12.0).contains(&value), "loss {value}");
    for g in [&grads.image, &grads.text] {
        assert!(g.to_vec_f32().unwrap().iter().all(|v| v.is_finite()));
    }
    assert!(grads.log_scale.to_scalar().unwrap().is_finite());
}
