//! NCCL between GPU ranks: the tensor collectives run on the device, on a
//! stream of their own ordered with the compute stream by events (see
//! `streams` for why that is safe with stream-ordered allocation); host
//! values, the bootstrap and the job's end go over a host collective (MPI).

mod raw;
mod streams;
mod timing;

use crate::{Backend, Collective, Pending, RingDirection};
use cudarc::nccl::sys::cudaStream_t;
use reclip_core::{Device, Error, Result, Shape, Tensor};
use std::sync::{Arc, Mutex, TryLockError};
use streams::{InFlight, Streams};
use timing::DeviceTime;

/// A rank's NCCL communicator on its CUDA device. Tensor collectives on that
/// device run through NCCL; tensors elsewhere (the CPU), host values,
/// barriers, the abort and the job's end go through the host collective.
pub struct NcclComm {
    /// None once finished or aborted. First, so that it is dropped (and
    /// destroyed) while the streams still hold the device's context.
    comm: Mutex<Option<raw::Handle>>,
    time: DeviceTime,
    streams: Streams,
    device: Device,
    host: Arc<dyn Collective>,
}

impl NcclComm {
    /// Joins every rank of `host` in one NCCL communicator on `device`, a
    /// CUDA device this rank already chose (by its local rank). Every rank
    /// must call it; rank 0 makes the unique id and `host` broadcasts it.
    /// When any rank cannot take part (no CUDA device, no libnccl), every
    /// rank returns an error instead of waiting for it.
    pub fn new(host: Arc<dyn Collective>, device: &Device) -> Result<Self> {
        let prepared = prepare(host.rank(), device);
        let failed = host.all_gather_u64(&[prepared.is_err() as u64])?;
        let (streams, id) = prepared?;
        let failed: Vec<String> =
            failed.iter().enumerate().filter(|&(_, &f)| f != 0).map(|(r, _)| r.to_string()).collect();
        if !failed.is_empty() {
            return Err(Error::Device(format!(
                "NCCL cannot start: rank(s) {} could not prepare it (see their errors)",
                failed.join(", ")
            )));
        }
        let id = raw::unique_id(&host.broadcast_bytes(id)?)?;
        streams.bind()?;
        let comm = raw::Handle::init(host.world(), id, host.rank())?;
        Ok(NcclComm {
            comm: Mutex::new(Some(comm)),
            time: DeviceTime::default(),
            streams,
            device: device.clone(),
            host,
        })
    }

    /// The version of the libnccl loaded, e.g. "2.27.7".
    pub fn version() -> Result<String> {
        raw::version()
    }

    /// Seconds the device spent in this rank's NCCL collectives since the
    /// last call (CUDA events around each on NCCL's stream). Blocks until the
    /// collectives queued so far are done: call it where the host waits for
    /// the device anyway.
    pub fn take_device_seconds(&self) -> Result<f64> {
        self.time.take_seconds()
    }

    /// Whether NCCL handles `t`: it lives on this communicator's device.
    fn on_device(&self, t: &Tensor) -> bool {
        t.device().same(&self.device)
    }

    /// Queues `call` on NCCL's stream after everything queued on the compute
    /// stream, timed, and returns it in flight with the buffers it uses.
    fn launch(
        &self,
        result: Tensor,
        keep: Vec<Tensor>,
        call: impl FnOnce(&raw::Handle, cudaStream_t) -> Result<()>,
    ) -> Result<InFlight> {
        let comm = self.comm.lock().unwrap_or_else(|e| e.into_inner());
        let comm = comm.as_ref().ok_or_else(|| Error::Device("NCCL: the communicator is finished".into()))?;
        self.streams.bind()?;
        self.streams.comm_after_compute()?;
        let start = self.time.start(&self.streams.comm)?;
        let called = call(comm, self.streams.comm.cu_stream() as cudaStream_t);
        // From here the buffers are held until the compute stream is ordered
        // after the collective, whether or not NCCL accepted it.
        let in_flight = self.streams.in_flight(result, keep);
        called?;
        self.time.end(start, &self.streams.comm)?;
        Ok(in_flight)
    }
}

/// This rank's half of the start: the CUDA backend's streams, libnccl, and
/// on rank 0 the unique id (empty elsewhere).
fn prepare(rank: usize, device: &Device) -> Result<(Streams, Vec<u8>)> {
    let backend = reclip_cuda::cuda_backend(device)
        .ok_or_else(|| Error::Device(format!("NCCL needs a CUDA device, not {device}")))?;
    raw::check_library()?;
    let streams = Streams::new(backend.stream().clone())?;
    let id = if rank == 0 { raw::new_unique_id()? } else { Vec::new() };
    Ok((streams, id))
}

/// `dims` with dimension 0 multiplied (`gather`) or divided by `world`.
fn resized(op: &'static str, shape: &Shape, world: usize, gather: bool) -> Result<Vec<usize>> {
    let mut dims = shape.dims().to_vec();
    let Some(rows) = dims.first_mut() else {
        return Err(Error::invalid(op, "a scalar has no dimension 0 to gather or scatter along"));
    };
    if gather {
        *rows *= world;
    } else if *rows % world != 0 {
        return Err(Error::invalid(op, format!("dimension 0 of shape {shape} does not split into {world} ranks")));
    } else {
        *rows /= world;
    }
    Ok(dims)
}

impl Collective for NcclComm {
    fn backend(&self) -> Backend {
        Backend::Nccl
    }

    fn rank(&self) -> usize {
        self.host.rank()
    }

    fn world(&self) -> usize {
        self.host.world()
    }

    fn local_rank(&self) -> usize {
        self.host.local_rank()
    }

    fn local_world(&self) -> usize {
        self.host.local_world()
    }

    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        const OP: &str = "all_gather";
        if !self.on_device(t) {
            return self.host.all_gather(t);
        }
        let dtype = raw::data_type(OP, t.dtype())?;
        let mut out = Tensor::empty(resized(OP, t.shape(), self.world(), true)?, t.dtype(), &self.device)?;
        let input = t.contiguous()?;
        let (send, recv, count) = (input.gpu_ptr()?, out.gpu_ptr_mut()?, input.elem_count());
        self.launch(out, vec![input], |comm, stream| comm.all_gather(send, recv, count, dtype, stream))?.finish()
    }

    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor> {
        const OP: &str = "reduce_scatter_sum";
        if !self.on_device(t) {
            return self.host.reduce_scatter_sum(t);
        }
        let dtype = raw::data_type(OP, t.dtype())?;
        let mut out = Tensor::empty(resized(OP, t.shape(), self.world(), false)?, t.dtype(), &self.device)?;
        let input = t.contiguous()?;
        let (send, recv, count) = (input.gpu_ptr()?, out.gpu_ptr_mut()?, out.elem_count());
        self.launch(out, vec![input], |comm, stream| comm.reduce_scatter_sum(send, recv, count, dtype, stream))?
            .finish()
    }

    fn ring_shift(&self, t: &Tensor, direction: RingDirection) -> Result<Tensor> {
        const OP: &str = "ring_shift";
        if !self.on_device(t) {
            return self.host.ring_shift(t, direction);
        }
        let dtype = raw::data_type(OP, t.dtype())?;
        let peers = direction.peers(self.rank(), self.world());
        let mut out = Tensor::empty(t.shape().clone(), t.dtype(), &self.device)?;
        let input = t.contiguous()?;
        let (send, recv, count) = (input.gpu_ptr()?, out.gpu_ptr_mut()?, input.elem_count());
        self.launch(out, vec![input], |comm, stream| comm.send_receive(send, recv, count, dtype, peers, stream))?
            .finish()
    }

    /// Sums in place on NCCL's stream and returns at once; the compute stream
    /// goes on meanwhile. [`Pending::wait`] makes the compute stream wait for
    /// the sum (the host does not block). `t`'s storage, copied first when
    /// other tensors share it or it is not contiguous, is the sum's.
    fn start_all_reduce_sum(&self, t: Tensor) -> Result<Pending> {
        if !self.on_device(&t) {
            return self.host.start_all_reduce_sum(t);
        }
        let dtype = raw::data_type("start_all_reduce_sum", t.dtype())?;
        let mut sum = t;
        let (ptr, count) = (sum.gpu_ptr_mut()?, sum.elem_count());
        let in_flight = self.launch(sum, Vec::new(), |comm, stream| comm.all_reduce_sum(ptr, count, dtype, stream))?;
        Ok(Pending::new(move || in_flight.finish()))
    }

    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        self.host.all_gather_u64(values)
    }

    fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        self.host.all_gather_f64(values)
    }

    fn broadcast_bytes(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.host.broadcast_bytes(bytes)
    }

    fn barrier(&self) -> Result<()> {
        self.host.barrier()
    }

    fn abort(&self, code: i32) -> ! {
        // Another thread may be inside a collective that never returns:
        // then only the host's abort is left, which ends the job anyway.
        let comm = match self.comm.try_lock() {
            Ok(mut comm) => comm.take(),
            Err(TryLockError::Poisoned(e)) => e.into_inner().take(),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(comm) = comm {
            comm.abort();
        }
        self.host.abort(code)
    }

    fn finish(&self) -> Result<()> {
        let comm = self.comm.lock().unwrap_or_else(|e| e.into_inner()).take();
        let destroyed = match comm {
            Some(comm) => self
                .streams
                .comm
                .synchronize()
                .map_err(|e| streams::driver("finishing the collectives", e))
                .and_then(|()| comm.destroy()),
            None => Ok(()),
        };
        // The host's end comes whatever NCCL's was: MPI must be finalized.
        let finished = self.host.finish();
        destroyed.and(finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_multiplies_and_scatter_divides_dimension_0() {
        let shape = Shape::new([6, 3]);
        assert_eq!(resized("t", &shape, 2, true).unwrap(), [12, 3]);
        assert_eq!(resized("t", &shape, 3, false).unwrap(), [2, 3]);
        assert_eq!(resized("t", &shape, 1, false).unwrap(), [6, 3]);
    }

    #[test]
    fn scatter_refuses_rows_that_do_not_split_and_scalars() {
        let e = resized("reduce_scatter_sum", &Shape::new([5, 2]), 2, false).unwrap_err().to_string();
        assert!(e.contains("reduce_scatter_sum") && e.contains("2 ranks"), "{e}");
        assert!(resized("all_gather", &Shape::new([]), 2, true).is_err());
    }

    #[test]
    fn the_version_says_so_where_libnccl_cannot_be_loaded() {
        match NcclComm::version() {
            Ok(v) => assert_eq!(v.split('.').count(), 3, "{v}"),
            Err(e) => assert!(e.to_string().contains("no libnccl.so on the library path"), "{e}"),
        }
    }

    #[test]
    fn a_cpu_device_is_refused_before_nccl_is_looked_for() {
        let e = NcclComm::new(Arc::new(crate::Single), &Device::Cpu).err().expect("the CPU is no CUDA device");
        let e = e.to_string();
        assert!(e.contains("NCCL needs a CUDA device, not cpu"), "{e}");
    }
}
