//! Graph recording on the emulator, with CUDA's rules: while recording,
//! device work is kept, not run; host copies and waits are refused; memory
//! allocated while recording is reserved to the graph (its addresses are
//! reused by every replay, and it is poisoned again at each, as the CUDA
//! backend's poisoning memset is recorded), so a tensor that outlives the
//! recording, or memory from before it freed in it, makes the recording
//! unusable, as it would on a GPU.

use crate::{Emulator, layout};
use reclip_core::{DeviceGraph, Error, GemmCall, KernelArg, Launch, Result};
use std::alloc::dealloc;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// One recorded operation, owning what it needs to run again.
pub(crate) enum Op {
    Launch { kernel: &'static str, grid: [u32; 3], block: [u32; 3], shared_bytes: u32, args: Vec<KernelArg> },
    Gemm(GemmCall),
    Copy { src: u64, dst: u64, bytes: usize },
    Fill { dst: u64, bytes: usize, byte: u8 },
}

/// A recording in progress.
#[derive(Default)]
pub(crate) struct Recording {
    pub ops: Vec<Op>,
    /// Allocations made while recording, by address: (bytes, still alive).
    pub allocations: HashMap<u64, (usize, bool)>,
    /// The first thing that makes the recording unusable.
    pub problem: Option<String>,
}

impl Recording {
    pub fn refuse(&mut self, what: String) {
        self.problem.get_or_insert(what);
    }
}

/// A finished recording.
pub(crate) struct EmulatorGraph {
    ops: Vec<Op>,
    /// The graph's memory, freed with it.
    reserved: Vec<(u64, usize)>,
    seed: u64,
    launches: Arc<AtomicU64>,
}

impl EmulatorGraph {
    pub fn new(recording: Recording, seed: u64, launches: Arc<AtomicU64>) -> Result<Self> {
        // Allocations still alive are their tensors' to free, whatever
        // becomes of the graph: it reserves only those freed while recording.
        let reserved: Vec<(u64, usize)> =
            recording.allocations.iter().filter(|(_, (_, alive))| !alive).map(|(&p, &(bytes, _))| (p, bytes)).collect();
        let alive = recording.allocations.values().filter(|(_, alive)| *alive).count();
        let graph = EmulatorGraph { ops: recording.ops, reserved, seed, launches };
        if let Some(why) = reclip_core::unreplayable(recording.problem, alive) {
            return Err(Error::Device(format!("emulator: the recorded graph cannot be replayed: {why}")));
        }
        Ok(graph)
    }
}

impl DeviceGraph for EmulatorGraph {
    fn replay(&self) -> Result<()> {
        for op in &self.ops {
            match op {
                Op::Launch { kernel, grid, block, shared_bytes, args } => {
                    let launch = Launch { kernel, grid: *grid, block: *block, shared_bytes: *shared_bytes, args };
                    Emulator::run_launch(self.seed, &self.launches, &launch)?;
                }
                // SAFETY: the call's pointers are emulator allocations that
                // were valid when it was recorded and are still: the graph
                // reserves its own, and the recording refused frees of others.
                Op::Gemm(call) => unsafe { reclip_core::cpu::gemm::gemm_host(call)? },
                // SAFETY: as for the GEMM.
                Op::Copy { src, dst, bytes } => unsafe { std::ptr::copy(*src as *const u8, *dst as *mut u8, *bytes) },
                // SAFETY: as for the GEMM.
                Op::Fill { dst, bytes, byte } => unsafe { std::ptr::write_bytes(*dst as *mut u8, *byte, *bytes) },
            }
        }
        Ok(())
    }
}

impl Drop for EmulatorGraph {
    fn drop(&mut self) {
        for &(p, bytes) in &self.reserved {
            // SAFETY: allocated by the emulator with this size while recording,
            // and freed only here.
            unsafe { dealloc(p as *mut u8, layout(bytes)) }
        }
    }
}
