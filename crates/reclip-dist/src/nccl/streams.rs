//! NCCL's own stream, ordered with the compute stream by events, and the
//! collectives queued on it that the compute stream has not yet waited for.
//!
//! Why this is memory-safe with stream-ordered allocation. Every buffer is
//! allocated (`cuMemAllocAsync`) and freed (`cuMemFreeAsync`) on the compute
//! stream, whose pool may hand a freed block to the next allocation on that
//! stream at once: ordering on the compute stream alone protects it, while
//! work on NCCL's stream is invisible to the pool. So for every buffer NCCL
//! reads or writes:
//! 1. NCCL's stream waits for an event recorded on the compute stream after
//!    the buffer was allocated and its contents written (and after any
//!    contiguous copy made for NCCL), so NCCL sees the finished data in
//!    memory the pool has handed out;
//! 2. the buffer's last handle is held by an [`InFlight`] until the compute
//!    stream has been made to wait for an event recorded on NCCL's stream
//!    after the collective. Only then can it be dropped, and its free is
//!    queued on the compute stream behind that wait, so the block is reused
//!    only after NCCL is done with it. Dropping an `InFlight` unwaited (an
//!    error path, a `Pending` never waited for) makes the same wait first.
//!
//! Should the wait itself fail, the stream is synchronised on the host
//! instead; when that fails too, the context is broken and no later work,
//! frees included, runs on it.

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaStream, DriverError};
use reclip_core::{Error, Result, Tensor};
use std::sync::Arc;

pub(super) fn driver(what: &str, e: DriverError) -> Error {
    Error::Device(format!("CUDA {what} (NCCL stream): {e}"))
}

/// The compute stream of the CUDA backend and the stream NCCL runs on.
pub(super) struct Streams {
    pub(super) compute: Arc<CudaStream>,
    pub(super) comm: Arc<CudaStream>,
}

impl Streams {
    pub(super) fn new(compute: Arc<CudaStream>) -> Result<Self> {
        let comm = compute.context().new_stream().map_err(|e| driver("creating a stream", e))?;
        Ok(Streams { compute, comm })
    }

    /// Makes the device's context current on this thread, as NCCL's calls need.
    pub(super) fn bind(&self) -> Result<()> {
        self.compute.context().bind_to_thread().map_err(|e| driver("binding the context", e))
    }

    /// NCCL's stream runs what is queued after this only once the compute
    /// stream has run everything queued on it so far.
    pub(super) fn comm_after_compute(&self) -> Result<()> {
        let ready = self.compute.record_event(None).map_err(|e| driver("recording an event", e))?;
        self.comm.wait(&ready).map_err(|e| driver("waiting for the compute stream", e))
    }

    /// The collective just queued on NCCL's stream, holding `result` and the
    /// other buffers it uses (`keep`) until the compute stream waits for it.
    pub(super) fn in_flight(&self, result: Tensor, keep: Vec<Tensor>) -> InFlight {
        let done = self.comm.record_event(Some(CUevent_flags::CU_EVENT_DISABLE_TIMING));
        InFlight { result: Some(result), keep, done, comm: self.comm.clone(), compute: self.compute.clone() }
    }
}

/// A collective queued on NCCL's stream, with the buffers it uses.
pub(super) struct InFlight {
    result: Option<Tensor>,
    keep: Vec<Tensor>,
    /// Recorded on NCCL's stream after the collective; an error when that
    /// failed, and the ordering falls back to synchronising NCCL's stream.
    done: std::result::Result<CudaEvent, DriverError>,
    comm: Arc<CudaStream>,
    compute: Arc<CudaStream>,
}

impl InFlight {
    /// The result, usable on the compute stream: work queued there from now
    /// on runs after the collective. The host does not wait.
    pub(super) fn finish(mut self) -> Result<Tensor> {
        self.order()?;
        Ok(self.result.take().expect("an InFlight's result is taken once"))
    }

    /// Orders the compute stream after the collective, so that the buffers
    /// may be dropped (their frees queue behind it).
    fn order(&mut self) -> Result<()> {
        let waited = match &self.done {
            Ok(done) => self.compute.wait(done).map_err(|e| driver("waiting for the collective", e)),
            Err(e) => Err(driver("recording the end of the collective", *e)),
        };
        if waited.is_err() {
            // The host then waits for NCCL's stream instead, so that the
            // buffers are no longer in use when dropped.
            let _ = self.comm.synchronize();
        }
        self.keep.clear();
        waited
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.result.is_some() {
            let _ = self.order();
        }
    }
}
