//! Memory guards for fuzzing. A parser that trusts a size field allocates
//! whatever a corrupt input asks for; that does not panic, it exhausts the
//! machine. [`GuardedAllocator`] (the fuzz binary's global allocator) records
//! the largest single allocation of each case, which the campaign reports
//! as a failure when it passes [`MAX_ALLOCATION_BYTES`], and stops the
//! process, naming the case, before the heap passes [`MAX_LIVE_BYTES`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// One allocation larger than this, for inputs of at most a megabyte, is a
/// missing input limit. 1 GiB sits above every ceiling the readers should
/// allow (an RGB image of PIL's 179-megapixel bomb limit needs 537 MB).
pub const MAX_ALLOCATION_BYTES: usize = 1 << 30;

/// The whole process's heap is not allowed past this: the fuzzer runs beside
/// builds on small machines, and an allocation this size is a bug found.
pub const MAX_LIVE_BYTES: usize = 4 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The case a thread is running, for the message when the heap limit stops it.
#[derive(Clone, Copy)]
pub struct CaseId {
    pub target: &'static str,
    pub seed: u64,
    pub case: u64,
}

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static RUNNING: Cell<Option<CaseId>> = const { Cell::new(None) };
}

/// The system allocator, with the limits above.
pub struct GuardedAllocator;

impl GuardedAllocator {
    fn admit(size: usize) {
        if STOPPING.load(Ordering::Relaxed) {
            return;
        }
        let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        if LIVE.load(Ordering::Relaxed).saturating_add(size) > MAX_LIVE_BYTES {
            stop(size);
        }
    }
}

/// Prints which case asked for too much memory, and how to reproduce it, then aborts.
#[cold]
fn stop(size: usize) -> ! {
    STOPPING.store(true, Ordering::Relaxed);
    let gib = |bytes: usize| bytes as f64 / (1u64 << 30) as f64;
    let live = gib(LIVE.load(Ordering::Relaxed));
    match RUNNING.try_with(Cell::get).ok().flatten() {
        Some(CaseId { target, seed, case }) => eprintln!(
            "reclip-fuzz: {target} input {case} asked for {:.1} GiB with {live:.1} GiB in use (limit {:.0} GiB); \
             save and rerun it with `reclip-fuzz {target} --seed {seed} --case {case}`",
            gib(size),
            gib(MAX_LIVE_BYTES)
        ),
        None => eprintln!("reclip-fuzz: asked for {:.1} GiB with {live:.1} GiB in use", gib(size)),
    }
    std::process::abort()
}

// SAFETY: every call is passed to `System` unchanged; the bookkeeping
// neither unwinds (`stop` aborts) nor touches the memory.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::admit(layout.size());
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::admit(layout.size());
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::admit(new_size.saturating_sub(layout.size()));
        let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(new_size)));
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

/// Marks the start of a case on this thread.
pub fn begin_case(id: CaseId) {
    LARGEST.set(0);
    RUNNING.set(Some(id));
}

/// Ends the case and returns its largest single allocation, in bytes (0
/// when the guarded allocator is not the global one).
pub fn end_case() -> usize {
    RUNNING.set(None);
    LARGEST.replace(0)
}
