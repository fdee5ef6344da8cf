//! Ranks launched by `mpirun` or `srun`, their collectives over MPI (rsmpi).
//!
//! Every MPI call is made by one thread of each rank, the one that
//! initialised MPI, taking jobs in order from a queue. That gives two things
//! at once: collectives are issued in the same order on every rank (the
//! order the trainer queues them, which is the same program on each), and
//! a started all-reduce makes progress while the trainer goes on with its
//! backward pass, as a non-blocking MPI call would, without relying on the
//! MPI library to progress in the background. Tensors travel through host
//! memory; sums of bf16 are taken in f32.

use crate::{Backend, Collective, Pending, RingDirection};
use bytemuck::Pod;
use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use reclip_core::{DType, Device, Error, Result, Tensor, bf16};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce(&Ranks) + Send>;

/// What the MPI thread holds: the world and this machine's part of it.
struct Ranks {
    world: SimpleCommunicator,
}

/// The ranks of an MPI job, seen from one of them.
pub struct MpiComm {
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    rank: usize,
    world: usize,
    local_rank: usize,
    local_world: usize,
}

fn mpi_error(what: impl std::fmt::Display) -> Error {
    Error::Device(format!("MPI: {what}"))
}

impl MpiComm {
    /// Initialises MPI (once per process) on a thread of its own and finds
    /// this rank's place in the job; the local rank is its index among the
    /// ranks that share its machine.
    pub fn init() -> Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let (ready, started) = channel();
        let thread = std::thread::Builder::new()
            .name("reclip-mpi".into())
            .spawn(move || {
                // Multiple, so that `abort` may come from any thread.
                let Some((universe, _)) = mpi::initialize_with_threading(Threading::Multiple) else {
                    let _ = ready.send(Err("it was initialised before in this process"));
                    return;
                };
                let world = universe.world();
                let local = world.split_shared(world.rank());
                let place = [world.rank(), world.size(), local.rank(), local.size()].map(|n| n as usize);
                // Communicators are freed before MPI is finalised.
                drop(local);
                let _ = ready.send(Ok(place));
                let ranks = Ranks { world };
                while let Ok(job) = queue.recv() {
                    job(&ranks);
                }
                // Finalised here, after the last job, by dropping the universe.
                drop(ranks);
                drop(universe);
            })
            .map_err(|e| mpi_error(format!("cannot start its thread: {e}")))?;
        let place = started.recv().map_err(|_| mpi_error("its thread ended while starting"))?;
        let [rank, world, local_rank, local_world] = place.map_err(mpi_error)?;
        Ok(MpiComm {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
            rank,
            world,
            local_rank,
            local_world,
        })
    }

    /// Queues `f` for the MPI thread; its result arrives on the receiver.
    fn queue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SimpleCommunicator) -> T + Send + 'static,
    ) -> Result<Receiver<T>> {
        let (done, result) = channel();
        let job: Job = Box::new(move |ranks| {
            let _ = done.send(f(&ranks.world));
        });
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let jobs = jobs.as_ref().ok_or_else(|| mpi_error("used after finish"))?;
        jobs.send(job).map_err(|_| mpi_error("its thread has stopped"))?;
        Ok(result)
    }

    /// Runs `f` on the MPI thread and waits for its result.
    fn call<T: Send + 'static>(&self, f: impl FnOnce(&SimpleCommunicator) -> T + Send + 'static) -> Result<T> {
        received(&self.queue(f)?)
    }
}

/// The result of a job queued for the MPI thread, once it is there.
fn received<T>(result: &Receiver<T>) -> Result<T> {
    result.recv().map_err(|_| mpi_error("its thread stopped during a collective"))
}

/// What a tensor collective does with each rank's buffer.
#[derive(Clone, Copy)]
enum Op {
    AllGather,
    ReduceScatterSum,
    AllReduceSum,
    RingShift(RingDirection),
}

impl Op {
    fn sums(self) -> bool {
        matches!(self, Op::ReduceScatterSum | Op::AllReduceSum)
    }

    /// The op on this rank's `v`, on the MPI thread.
    fn run<T: Equivalence + Pod>(self, world: &SimpleCommunicator, v: &[T]) -> Vec<T> {
        let n = world.size() as usize;
        let sum = SystemOperation::sum();
        match self {
            Op::AllGather => {
                let mut out = vec![T::zeroed(); v.len() * n];
                world.all_gather_into(v, &mut out[..]);
                out
            }
            Op::ReduceScatterSum => {
                let mut out = vec![T::zeroed(); v.len() / n];
                world.reduce_scatter_block_into(v, &mut out[..], sum);
                out
            }
            Op::AllReduceSum => {
                let mut out = vec![T::zeroed(); v.len()];
                world.all_reduce_into(v, &mut out[..], sum);
                out
            }
            Op::RingShift(direction) => {
                let (to, from) = direction.peers(world.rank() as usize, n);
                let mut out = vec![T::zeroed(); v.len()];
                // One MPI_Sendrecv: every rank sends and receives at once, so
                // no order of sends and receives around the ring can
                // deadlock. A rank whose block is larger than its receiver's
                // truncates that receive somewhere around the ring, which MPI
                // reports (fatally, by default).
                let (to, from) = (world.process_at_rank(to as i32), world.process_at_rank(from as i32));
                mpi::point_to_point::send_receive_into(v, &to, &mut out[..], &from);
                out
            }
        }
    }
}

/// A tensor's elements on the host, as MPI moves them.
enum Host {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// bf16 bits, for collectives that only move data.
    Bf16(Vec<u16>),
}

impl Host {
    /// The elements of `t`; bf16 as f32 when they are to be summed.
    fn of(t: &Tensor, summed: bool) -> Result<Host> {
        let host = match t.dtype() {
            DType::F32 => Host::F32(t.to_vec()?),
            DType::F64 => Host::F64(t.to_vec()?),
            DType::BF16 if summed => Host::F32(t.to_dtype(DType::F32)?.to_vec()?),
            DType::BF16 => Host::Bf16(bytemuck::cast_vec(t.to_vec::<bf16>()?)),
            other => return Err(Error::DType { op: "MPI collective", got: other, expected: "f32, bf16 or f64" }),
        };
        Ok(host)
    }

    fn len(&self) -> usize {
        match self {
            Host::F32(v) => v.len(),
            Host::F64(v) => v.len(),
            Host::Bf16(v) => v.len(),
        }
    }

    fn run(&self, op: Op, world: &SimpleCommunicator) -> Host {
        match self {
            Host::F32(v) => Host::F32(op.run(world, v)),
            Host::F64(v) => Host::F64(op.run(world, v)),
            Host::Bf16(v) => Host::Bf16(op.run(world, v)),
        }
    }

    /// A tensor of `dtype` on `device` from these elements.
    fn into_tensor(self, dims: Vec<usize>, dtype: DType, device: &Device) -> Result<Tensor> {
        let t = match self {
            Host::F32(v) => Tensor::from_vec(v, dims, device)?,
            Host::F64(v) => Tensor::from_vec(v, dims, device)?,
            Host::Bf16(v) => Tensor::from_vec(bytemuck::cast_vec::<u16, bf16>(v), dims, device)?,
        };
        if t.dtype() == dtype { Ok(t) } else { t.to_dtype(dtype) }
    }
}

/// `t`'s shape with dimension 0 times the world (gathered) or divided by it
/// (scattered); the same shape for the ops that keep it.
fn rows(t: &Tensor, op: Op, world: usize) -> Result<Vec<usize>> {
    let mut dims = t.dims().to_vec();
    let name = match op {
        Op::AllGather => "all_gather",
        Op::ReduceScatterSum => "reduce_scatter",
        Op::AllReduceSum | Op::RingShift(_) => return Ok(dims),
    };
    let Some(first) = dims.first_mut() else {
        return Err(Error::invalid(name, "needs a tensor of rank 1 or more"));
    };
    match op {
        Op::ReduceScatterSum if *first % world != 0 => {
            return Err(Error::invalid(name, format!("{} rows do not split evenly over {world} ranks", *first)));
        }
        Op::ReduceScatterSum => *first /= world,
        _ => *first *= world,
    }
    Ok(dims)
}

impl MpiComm {
    /// Queues `op` on `t` and returns a handle to its result.
    fn start(&self, op: Op, t: &Tensor) -> Result<Pending> {
        let dims = rows(t, op, self.world)?;
        let host = Host::of(t, op.sums())?;
        if i32::try_from(host.len().max(dims.iter().product())).is_err() {
            return Err(mpi_error(format!("{} elements exceed the 2^31 an MPI call can move", host.len())));
        }
        let (dtype, device) = (t.dtype(), t.device().clone());
        let result = self.queue(move |world| host.run(op, world))?;
        Ok(Pending::new(move || {
            let host = received(&result)?;
            host.into_tensor(dims, dtype, &device)
        }))
    }
}

impl Collective for MpiComm {
    fn backend(&self) -> Backend {
        Backend::Mpi
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn local_world(&self) -> usize {
        self.local_world
    }

    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        self.start(Op::AllGather, t)?.wait()
    }

    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor> {
        self.start(Op::ReduceScatterSum, t)?.wait()
    }

    fn ring_shift(&self, t: &Tensor, direction: RingDirection) -> Result<Tensor> {
        self.start(Op::RingShift(direction), t)?.wait()
    }

    fn start_all_reduce_sum(&self, t: Tensor) -> Result<Pending> {
        self.start(Op::AllReduceSum, &t)
    }

    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        let values = values.to_vec();
        self.call(move |world| Op::AllGather.run(world, &values))
    }

    fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        let values = values.to_vec();
        self.call(move |world| Op::AllGather.run(world, &values))
    }

    fn broadcast_bytes(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.call(move |world| {
            let root = world.process_at_rank(0);
            let mut len = bytes.len() as u64;
            root.broadcast_into(&mut len);
            let mut buf = if world.rank() == 0 { bytes } else { vec![0u8; len as usize] };
            root.broadcast_into(&mut buf[..]);
            buf
        })
    }

    fn barrier(&self) -> Result<()> {
        self.call(|world| world.barrier())
    }

    fn abort(&self, code: i32) -> ! {
        // SAFETY: MPI is initialised (an MpiComm exists only then) and the
        // world communicator is valid until finalize. MPI_Abort from a thread
        // other than MPI's own is what MPI_THREAD_MULTIPLE, asked for at
        // initialisation, allows; it ends every rank and does not return.
        unsafe {
            mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, code);
        }
        std::process::exit(code)
    }

    fn finish(&self) -> Result<()> {
        // Closing the queue ends the MPI thread after its last job, which
        // finalises MPI.
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            thread.join().map_err(|_| mpi_error("its thread panicked"))?;
        }
        Ok(())
    }
}
