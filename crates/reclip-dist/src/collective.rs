//! The operations data parallelism needs, as each backend provides them.

use reclip_core::{Result, Tensor};

/// Which engine moves a rank's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One process: every collective is the identity.
    Single,
    /// MPI between processes, through host memory.
    Mpi,
    /// NCCL between GPUs, on the device; host values over MPI.
    Nccl,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Single => "single",
            Backend::Mpi => "mpi",
            Backend::Nccl => "nccl",
        }
    }
}

/// Which way [`Collective::ring_shift`] passes each rank's block around the
/// ring of ranks 0, 1, …, world−1, 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingDirection {
    /// Rank r sends to rank r+1 and receives from rank r−1 (mod world).
    Up,
    /// Rank r sends to rank r−1 and receives from rank r+1 (mod world):
    /// `Up`'s backward.
    Down,
}

impl RingDirection {
    /// The other way round: the direction of a shift's backward.
    pub fn opposite(self) -> Self {
        match self {
            RingDirection::Up => RingDirection::Down,
            RingDirection::Down => RingDirection::Up,
        }
    }

    /// The rank that `rank` sends to and the rank it receives from, in a
    /// ring of `world` ≥ 1 ranks (for the backends that move data).
    #[cfg(feature = "mpi")]
    pub(crate) fn peers(self, rank: usize, world: usize) -> (usize, usize) {
        let (next, previous) = ((rank + 1) % world, (rank + world - 1) % world);
        match self {
            RingDirection::Up => (next, previous),
            RingDirection::Down => (previous, next),
        }
    }
}

/// Collectives over the ranks of one job. Every rank must make the same
/// calls in the same order with tensors of the same shape and dtype, as in
/// MPI; the trainer's steps are the same program on every rank, which makes
/// it so. Tensor collectives accept f32, bf16 and f64 on any device and
/// return their result on the input's device.
pub trait Collective: Send + Sync {
    fn backend(&self) -> Backend;
    /// This process's rank, 0 ≤ rank < world.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn world(&self) -> usize;
    /// This rank's index among the ranks of its machine: the GPU it uses.
    fn local_rank(&self) -> usize;
    /// The number of ranks on this rank's machine.
    fn local_world(&self) -> usize;
    /// Every rank's `t` ([b, …]) concatenated along dimension 0 in rank
    /// order: [world·b, …].
    fn all_gather(&self, t: &Tensor) -> Result<Tensor>;
    /// `t` ([world·b, …]) summed over ranks, of which rank r keeps rows
    /// r·b .. (r+1)·b: [b, …]. The backward of [`Collective::all_gather`].
    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor>;
    /// This rank's `t` passed one step around the ring of ranks: with
    /// [`RingDirection::Up`] rank r sends `t` to rank r+1 and returns the
    /// `t` of rank r−1 (mod world), with [`RingDirection::Down`] the
    /// reverse; the identity for world 1. Every rank passes a tensor of the
    /// same shape and dtype, which the result has too.
    fn ring_shift(&self, t: &Tensor, direction: RingDirection) -> Result<Tensor>;
    /// Starts summing `t` over ranks and returns at once; [`Pending::wait`]
    /// gives the sum. Each rank's work goes on meanwhile.
    fn start_all_reduce_sum(&self, t: Tensor) -> Result<Pending>;
    /// Every rank's `values` (the same count on each), concatenated in rank
    /// order: host numbers such as checksums, losses and timings.
    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>>;
    fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>>;
    /// Rank 0's `bytes`, on every rank (other ranks' `bytes` are ignored).
    fn broadcast_bytes(&self, bytes: Vec<u8>) -> Result<Vec<u8>>;
    /// Waits until every rank has called it.
    fn barrier(&self) -> Result<()>;
    /// Ends the whole job now with exit status `code`: the way out for an
    /// error on one rank that the others would otherwise wait for forever.
    fn abort(&self, code: i32) -> !;
    /// Ends this rank's part in the job after its last collective (MPI's
    /// finalize). Later calls do nothing.
    fn finish(&self) -> Result<()>;
}

/// A sum started by [`Collective::start_all_reduce_sum`].
pub struct Pending(Box<dyn FnOnce() -> Result<Tensor> + Send>);

impl Pending {
    /// A result that is already there.
    pub fn ready(t: Tensor) -> Self {
        Pending(Box::new(move || Ok(t)))
    }

    /// A result that `wait` produces.
    pub fn new(wait: impl FnOnce() -> Result<Tensor> + Send + 'static) -> Self {
        Pending(Box::new(wait))
    }

    /// Blocks until the sum is there.
    pub fn wait(self) -> Result<Tensor> {
        (self.0)()
    }
}
