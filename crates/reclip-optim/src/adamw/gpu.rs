//! Launches of the fused step (kernels/adamw.cu): the squared gradient norm
//! per chunk, the clipping coefficient, then the update of every chunk, all
//! driven by one table of chunks on the device.

use super::{Hyper, OP, Slot, StepReport};
use bytemuck::{Pod, Zeroable};
use reclip_core::gpu::{THREADS, int_arg, optional_ptr, ptr, vector_form};
use reclip_core::{DType, Device, GpuDevice, KernelArg, Launch, Result, Tensor, kernel_name};

// The kernels' block reductions (`block_sum_256`) are written for this many threads.
const _: () = assert!(THREADS == 256, "kernels/adamw.cu reduces over blocks of 256 threads");

/// Elements per chunk of the fused GPU step: one block each.
const CHUNK: usize = 1 << 16;
/// f32 elements per 16-byte pack, the unit of the kernels' vector form.
const PACK: usize = 4;

/// One row of the GPU step's chunk table (`AdamChunk` in kernels/adamw.cu).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamChunk {
    param: u64,
    grad: u64,
    m: u64,
    v: u64,
    n: i64,
    decay: i32,
    /// 1 when the chunk is whole packs and every pointer 16-byte aligned:
    /// the kernels take it in 16-byte loads and stores.
    packed: i32,
}

/// The step over every parameter that has a gradient, on `device`.
pub(super) fn step(
    device: &GpuDevice,
    slots: &mut [Slot],
    table: &mut Option<ChunkTable>,
    hyper: Hyper,
) -> Result<StepReport> {
    let mut taken: Vec<(usize, Tensor)> = Vec::new();
    let result = fused_step(device, slots, table, hyper, &mut taken);
    // Give the values back whatever happened, so that a failed step leaves
    // the model usable.
    for (slot, value) in taken {
        slots[slot].param.set_value(value);
    }
    result
}

/// The fused step over every parameter that has a gradient; the values
/// it updates in place are moved into `taken` for the caller to return.
fn fused_step(
    g: &GpuDevice,
    slots: &mut [Slot],
    table: &mut Option<ChunkTable>,
    hyper: Hyper,
    taken: &mut Vec<(usize, Tensor)>,
) -> Result<StepReport> {
    let device = &Device::Gpu(g.clone());
    let mut grads: Vec<Tensor> = Vec::new();
    let mut key: Vec<TableEntry> = Vec::new();
    for (slot, s) in slots.iter_mut().enumerate() {
        let Some(grad) = s.param.take_grad() else { continue };
        grads.push(grad.to_dtype(DType::F32)?.contiguous()?);
        taken.push((slot, s.param.take_value()));
        // The updated tensors must own their storage: they are written in place.
        let value = &mut taken.last_mut().expect("just pushed").1;
        let (param, m, v) = (value.gpu_ptr_mut()?, s.m.gpu_ptr_mut()?, s.v.gpu_ptr_mut()?);
        key.push(TableEntry { slot, param, m, v, n: value.elem_count(), decay: s.decay });
    }
    if key.is_empty() {
        return Ok(StepReport { norm: None });
    }
    if table.as_ref().is_none_or(|t| t.key != key) {
        *table = Some(ChunkTable::upload(key, device)?);
    }
    let table = table.as_ref().expect("built above");
    for (grad, &offset) in grads.iter().zip(&table.offsets) {
        let dst = table.grads.gpu_ptr()? + (offset * 4) as u64;
        g.backend().copy(grad.gpu_ptr()?, dst, grad.elem_count() * 4)?;
    }
    drop(grads);

    let n = int_arg(OP, "parameter chunks", table.rows)?;
    let partial = Tensor::empty([table.rows], DType::F32, device)?;
    let clip = Tensor::empty([2], DType::F32, device)?;
    g.launch(&Launch::linear(
        kernel_name!("grad_sq_partials", DType::F32, OP)?,
        n as u32,
        THREADS,
        &[ptr(&table.chunks)?, ptr(&partial)?],
    ))?;
    g.launch(&Launch::linear(
        kernel_name!("clip_coefficient", DType::F32, OP)?,
        1,
        THREADS,
        &[ptr(&partial)?, KernelArg::I32(n), KernelArg::F32(hyper.cfg.max_grad_norm.unwrap_or(0.0)), ptr(&clip)?],
    ))?;
    let (cfg, (bc1, bc2)) = (hyper.cfg, hyper.bias_corrections);
    g.launch(&Launch::linear(
        kernel_name!("adamw_step", DType::F32, OP)?,
        n as u32,
        THREADS,
        &[
            ptr(&table.chunks)?,
            ptr(&clip)?,
            KernelArg::F32(hyper.lr),
            KernelArg::F32(cfg.beta1),
            KernelArg::F32(cfg.beta2),
            KernelArg::F32(cfg.eps),
            KernelArg::F32(cfg.weight_decay),
            KernelArg::F32(bc1),
            KernelArg::F32(bc2),
            optional_ptr(hyper.scalars)?,
        ],
    ))?;
    Ok(StepReport { norm: Some(clip.narrow(0, 0, 1)?) })
}

/// What one parameter contributes to the chunk table: where its value and
/// moments live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TableEntry {
    slot: usize,
    param: u64,
    m: u64,
    v: u64,
    n: usize,
    decay: bool,
}

/// The fused step's chunk table on the device, uploaded once and reused
/// while every parameter and moment keeps its storage; a resized parameter,
/// restored moments or another set of parameters with gradients builds a new
/// one. The autograd hands over fresh gradient buffers each step, so the
/// table points at a gradient arena of its own instead, and each step copies
/// the gradients there on the device (4 bytes read and 4 written per
/// parameter, beside the step's 28): a device copy instead of an upload,
/// which would wait for the host. Each parameter's gradient starts on a
/// 16-byte boundary of the arena, so that its chunks can be packed.
pub(super) struct ChunkTable {
    key: Vec<TableEntry>,
    chunks: Tensor,
    rows: usize,
    grads: Tensor,
    /// Each entry's first element in `grads`.
    offsets: Vec<usize>,
}

impl ChunkTable {
    fn upload(key: Vec<TableEntry>, device: &Device) -> Result<Self> {
        let total = key.iter().map(|e| e.n.next_multiple_of(PACK)).sum::<usize>();
        let grads = Tensor::empty([total], DType::F32, device)?;
        let arena = grads.gpu_ptr()?;
        let (mut rows, mut offsets, mut offset) = (Vec::new(), Vec::new(), 0usize);
        for e in &key {
            offsets.push(offset);
            for start in (0..e.n).step_by(CHUNK) {
                let at = (start * 4) as u64;
                let (param, grad, m, v) = (e.param + at, arena + ((offset + start) * 4) as u64, e.m + at, e.v + at);
                let n = CHUNK.min(e.n - start);
                let packed = vector_form(DType::F32, n, &[param, grad, m, v]);
                rows.push(AdamChunk { param, grad, m, v, n: n as i64, decay: e.decay as i32, packed: packed as i32 });
            }
            offset += e.n.next_multiple_of(PACK);
        }
        let words: &[u32] = bytemuck::cast_slice(&rows);
        let chunks = Tensor::from_slice(words, [words.len()], device)?;
        Ok(ChunkTable { key, chunks, rows: rows.len(), grads, offsets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every parameter's gradient starts on a 16-byte boundary of the arena,
    /// whatever the sizes before it, so a chunk is packed exactly when it is
    /// whole packs and its parameter and moments are aligned.
    #[test]
    fn chunks_of_whole_aligned_packs_are_packed() {
        let device = reclip_testkit::test_device();
        let storage = Tensor::zeros([2 * CHUNK], DType::F32, &device).unwrap();
        let at = storage.gpu_ptr().unwrap();
        // (elements, byte offset of the parameter and its moments)
        let params = [(35, 0), (64, 0), (1, 0), (CHUNK + 8, 0), (6, 0), (64, 4)];
        let key = params
            .iter()
            .enumerate()
            .map(|(slot, &(n, offset))| {
                let p = at + offset;
                TableEntry { slot, param: p, m: p, v: p, n, decay: false }
            })
            .collect();
        let table = ChunkTable::upload(key, &device).unwrap();
        let words = table.chunks.to_vec::<u32>().unwrap();
        let row_words = size_of::<AdamChunk>() / 4;
        let packed: Vec<i32> = words
            .chunks(row_words)
            .map(|w| bytemuck::pod_read_unaligned::<AdamChunk>(bytemuck::cast_slice(w)).packed)
            .collect();
        assert_eq!(packed, [0, 1, 0, 1, 1, 0, 0]);
    }
}
