//! CUDA graphs: the backend's stream recorded with stream capture and
//! replayed with cuGraphLaunch. Allocations made while recording are the
//! graph's memory nodes (the stream-ordered pool allocates inside capture),
//! reused at the same addresses by every replay; the backend tracks them so
//! that one outliving the recording, or a free of older memory inside it, is
//! an error at the end of the recording instead of a fault at a replay.

use cudarc::driver::{CudaGraph, result};
use reclip_core::{DeviceGraph, Error, Result};
use std::collections::HashSet;
use std::sync::Mutex;

/// A recording in progress.
#[derive(Default)]
pub(crate) struct Recording {
    /// Allocations made while recording and not yet freed in it.
    pub alive: HashSet<u64>,
    /// Older memory dropped while recording: freed once the recording ends
    /// (a free recorded in the graph would run again at each replay).
    pub deferred_frees: Vec<u64>,
    /// The first thing that makes the recording unusable.
    pub problem: Option<String>,
}

impl Recording {
    pub fn refuse(&mut self, what: String) {
        self.problem.get_or_insert(what);
    }

    /// Why the finished recording cannot be replayed, if it cannot.
    pub fn verdict(&self) -> Option<String> {
        reclip_core::unreplayable(self.problem.clone(), self.alive.len())
    }

    /// Frees the older memory dropped while recording, on `stream`.
    pub fn finish(self, stream: cudarc::driver::sys::CUstream) {
        for ptr in self.deferred_frees {
            // SAFETY: allocations of this backend's pool; the recording that
            // dropped them never runs, and earlier work is stream-ordered.
            let _ = unsafe { result::free_async(ptr, stream) };
        }
    }
}

/// A recorded, instantiated graph.
pub(crate) struct CudaStepGraph(Mutex<CudaGraph>);

impl CudaStepGraph {
    pub fn new(graph: CudaGraph) -> Self {
        CudaStepGraph(Mutex::new(graph))
    }
}

// SAFETY: cudarc's graph is not internally synchronised; every use goes
// through the mutex, and its launch binds the graph's context first.
unsafe impl Send for CudaStepGraph {}
unsafe impl Sync for CudaStepGraph {}

impl DeviceGraph for CudaStepGraph {
    fn replay(&self) -> Result<()> {
        let graph = self.0.lock().unwrap_or_else(|e| e.into_inner());
        graph.launch().map_err(|e| Error::Device(format!("CUDA graph launch: {e}")))
    }
}
