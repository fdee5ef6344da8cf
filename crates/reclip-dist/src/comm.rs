//! The handle the trainer holds: a backend, shared, with the time this rank
//! has spent blocked on it.

use crate::{Backend, Collective, Pending, RingDirection, Single};
use reclip_core::{Result, Tensor};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A shared [`Collective`] that also counts the time the calling thread
/// waits for it: the communication a step does not hide behind compute.
#[derive(Clone)]
pub struct Comm {
    inner: Arc<dyn Collective>,
    waited_ns: Arc<AtomicU64>,
}

impl Comm {
    pub fn new(inner: Arc<dyn Collective>) -> Self {
        Comm { inner, waited_ns: Arc::new(AtomicU64::new(0)) }
    }

    /// One process, world 1.
    pub fn single() -> Self {
        Self::new(Arc::new(Single))
    }

    pub fn collective(&self) -> &Arc<dyn Collective> {
        &self.inner
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend()
    }

    pub fn rank(&self) -> usize {
        self.inner.rank()
    }

    pub fn world(&self) -> usize {
        self.inner.world()
    }

    pub fn local_rank(&self) -> usize {
        self.inner.local_rank()
    }

    pub fn local_world(&self) -> usize {
        self.inner.local_world()
    }

    /// Whether this rank writes the run's files (rank 0).
    pub fn is_leader(&self) -> bool {
        self.rank() == 0
    }

    pub fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        self.timed(|| self.inner.all_gather(t))
    }

    pub fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor> {
        self.timed(|| self.inner.reduce_scatter_sum(t))
    }

    pub fn ring_shift(&self, t: &Tensor, direction: RingDirection) -> Result<Tensor> {
        self.timed(|| self.inner.ring_shift(t, direction))
    }

    pub fn start_all_reduce_sum(&self, t: Tensor) -> Result<Pending> {
        self.inner.start_all_reduce_sum(t)
    }

    /// Waits for a sum started by [`Comm::start_all_reduce_sum`], counting the wait.
    pub fn wait(&self, pending: Pending) -> Result<Tensor> {
        self.timed(|| pending.wait())
    }

    pub fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        self.timed(|| self.inner.all_gather_u64(values))
    }

    pub fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        self.timed(|| self.inner.all_gather_f64(values))
    }

    /// Every rank's `bytes` (of any length), in rank order: two gathers of
    /// numbers, the lengths and then the bytes packed in words, padded to
    /// the longest.
    pub fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        let lengths = self.all_gather_u64(&[bytes.len() as u64])?;
        let words = lengths.iter().max().map_or(0, |&n| n.div_ceil(8)) as usize;
        let mut packed = vec![0u64; words];
        for (word, chunk) in packed.iter_mut().zip(bytes.chunks(8)) {
            let mut le = [0u8; 8];
            le[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_le_bytes(le);
        }
        let all = self.all_gather_u64(&packed)?;
        let unpack = |(rank, &len): (usize, &u64)| {
            let words = all[rank * words..(rank + 1) * words].iter().flat_map(|w| w.to_le_bytes());
            words.take(len as usize).collect()
        };
        Ok(lengths.iter().enumerate().map(unpack).collect())
    }

    pub fn broadcast_bytes(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.inner.broadcast_bytes(bytes)
    }

    pub fn barrier(&self) -> Result<()> {
        self.inner.barrier()
    }

    pub fn abort(&self, code: i32) -> ! {
        self.inner.abort(code)
    }

    pub fn finish(&self) -> Result<()> {
        self.inner.finish()
    }

    /// Seconds this rank has waited on collectives so far: read it at the
    /// two ends of a span of steps for their communication time.
    pub fn waited_seconds(&self) -> f64 {
        self.waited_ns.load(Ordering::Relaxed) as f64 * 1e-9
    }

    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.waited_ns.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Comm({} rank {} of {})", self.backend().name(), self.rank(), self.world())
    }
}
