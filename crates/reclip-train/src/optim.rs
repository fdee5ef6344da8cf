//! AdamW as open_clip trains with it (torch.optim.AdamW: decoupled weight
//! decay, bias-corrected moments), with clipping of the global gradient norm.
//! Weight decay skips what open_clip skips: parameters of rank < 2, and names
//! containing "ln", "bn", "bias", "embedding", "gain" or "logit_scale".
//!
//! On the CPU the update runs per parameter with rayon. On a GPU all
//! parameters are updated by one launch of `adamw_step_f32` over a table of
//! chunks, uploaded once; the gradient norm and the clipping coefficient are
//! computed on the device too, so a step neither waits for the GPU nor
//! transfers anything.

use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;
use reclip_autograd::Param;
use reclip_core::{DType, Device, Error, KernelArg, Launch, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Clip the global gradient norm to this; `None` disables clipping.
    pub max_grad_norm: Option<f32>,
}

impl Default for AdamWConfig {
    /// open_clip's defaults for ViT training: β = (0.9, 0.98), ε = 1e-6, wd 0.2, clip at 1.0.
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.98, eps: 1e-6, weight_decay: 0.2, max_grad_norm: Some(1.0) }
    }
}

/// open_clip's rule for which parameters get weight decay.
pub fn decays(name: &str, rank: usize) -> bool {
    const EXEMPT: [&str; 6] = ["ln", "bn", "bias", "embedding", "gain", "logit_scale"];
    rank >= 2 && !EXEMPT.iter().any(|e| name.contains(e))
}

struct Slot {
    param: Param,
    decay: bool,
    m: Tensor,
    v: Tensor,
}

/// What a step did. The gradient norm is before clipping; on a GPU it stays
/// on the device until asked for.
pub struct StepReport {
    norm: Option<Tensor>,
}

impl StepReport {
    /// The global gradient norm (reads it back from the device).
    pub fn grad_norm(&self) -> Result<Option<f32>> {
        self.norm.as_ref().map(|t| t.to_vec_f32().map(|v| v[0])).transpose()
    }
}

pub struct AdamW {
    cfg: AdamWConfig,
    slots: Vec<Slot>,
    step: u64,
    /// The fused GPU step's table of parameters, once built.
    table: Option<ChunkTable>,
}

/// Elements per chunk of the fused GPU step: one block each.
const CHUNK: usize = 1 << 16;

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
    pad: i32,
}

impl AdamW {
    /// An optimizer over `params` (f32 master weights); moments start at zero.
    pub fn new(params: &[Param], cfg: AdamWConfig) -> Result<Self> {
        let slots = params
            .iter()
            .map(|p| {
                let v = p.value();
                if v.dtype() != DType::F32 {
                    return Err(Error::DType { op: "AdamW", got: v.dtype(), expected: "f32 master weights" });
                }
                Ok(Slot { param: p.clone(), decay: decays(p.name(), v.rank()), m: v.zeros_like()?, v: v.zeros_like()? })
            })
            .collect::<Result<_>>()?;
        Ok(AdamW { cfg, slots, step: 0, table: None })
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The moments of each parameter, by parameter name, for checkpoints.
    pub fn moments(&self) -> impl Iterator<Item = (&str, &Tensor, &Tensor)> {
        self.slots.iter().map(|s| (s.param.name(), &s.m, &s.v))
    }

    /// Restores moments and the step count saved by a checkpoint.
    pub fn restore(&mut self, step: u64, mut moments: impl FnMut(&str) -> Option<(Tensor, Tensor)>) -> Result<()> {
        for s in &mut self.slots {
            let (m, v) = moments(s.param.name()).ok_or_else(|| {
                Error::invalid("AdamW", format!("no optimizer state for parameter {}", s.param.name()))
            })?;
            if m.shape() != s.m.shape() || v.shape() != s.v.shape() {
                return Err(Error::invalid(
                    "AdamW",
                    format!(
                        "optimizer state of {} has shape {}, the parameter {}",
                        s.param.name(),
                        m.shape(),
                        s.m.shape()
                    ),
                ));
            }
            s.m = m.to_dtype(DType::F32)?.to_device(s.m.device())?;
            s.v = v.to_dtype(DType::F32)?.to_device(s.v.device())?;
        }
        self.step = step;
        Ok(())
    }

    fn slot_mut(&mut self, param: &Param) -> Result<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|s| s.param.same(param))
            .ok_or_else(|| Error::invalid("AdamW", format!("{} is not optimized", param.name())))
    }

    /// Replaces a parameter's moments (e.g. zeroed after its shape changed).
    pub fn reset_moments(&mut self, param: &Param) -> Result<()> {
        let s = self.slot_mut(param)?;
        s.m = param.value().zeros_like()?;
        s.v = param.value().zeros_like()?;
        Ok(())
    }

    /// Resizes `param`'s moments with `resize`, the map its value was just
    /// resized with: each new position starts from the statistics of the old
    /// positions it was interpolated from. Interpolation can overshoot below
    /// zero, which a second moment cannot be; those are clamped to zero.
    pub fn resize_moments(&mut self, param: &Param, resize: impl Fn(&Tensor) -> Result<Tensor>) -> Result<()> {
        let s = self.slot_mut(param)?;
        let (m, mut v) = (resize(&s.m)?, resize(&s.v)?);
        v.clamp_in_place(0.0, f64::from(f32::MAX))?;
        if m.dims() != param.value().dims() {
            return Err(Error::invalid(
                "AdamW",
                format!(
                    "{}'s moments resized to {:?}, the parameter is {:?}",
                    param.name(),
                    m.dims(),
                    param.value().dims()
                ),
            ));
        }
        (s.m, s.v) = (m, v);
        Ok(())
    }

    /// One update with learning rate `lr`, consuming the parameters'
    /// gradients. Parameters without a gradient are left alone.
    pub fn step(&mut self, lr: f32) -> Result<StepReport> {
        // The fused kernel trusts the moments to cover the parameter: a
        // parameter resized since (a new image size's positional embedding)
        // would have it write past them.
        for s in &self.slots {
            let (value, moments) = (s.param.value(), &s.m);
            if value.dims() != moments.dims() {
                return Err(Error::invalid(
                    "AdamW",
                    format!(
                        "{} is now {:?} but its moments are {:?}: call reset_moments after resizing it",
                        s.param.name(),
                        value.dims(),
                        moments.dims()
                    ),
                ));
            }
        }
        self.step += 1;
        let device = match self.slots.first() {
            Some(s) => s.param.value().device().clone(),
            None => return Ok(StepReport { norm: None }),
        };
        match device {
            Device::Cpu => self.step_cpu(lr),
            Device::Gpu(_) => self.step_gpu(lr, &device),
        }
    }

    fn bias_corrections(&self) -> (f32, f32) {
        let t = self.step as i32;
        (1.0 - self.cfg.beta1.powi(t), 1.0 - self.cfg.beta2.powi(t))
    }

    fn step_cpu(&mut self, lr: f32) -> Result<StepReport> {
        let grads: Vec<Option<Tensor>> = self.slots.iter().map(|s| s.param.take_grad()).collect();
        let mut sq = 0.0f64;
        let mut grad_data: Vec<Option<Vec<f32>>> = Vec::with_capacity(grads.len());
        for g in &grads {
            let d = g.as_ref().map(|g| g.to_vec_f32()).transpose()?;
            if let Some(d) = &d {
                sq += d.par_iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
            }
            grad_data.push(d);
        }
        let norm = sq.sqrt() as f32;
        let scale = match self.cfg.max_grad_norm {
            Some(max) => (max / (norm + 1e-6)).min(1.0),
            None => 1.0,
        };
        let (bc1, bc2) = self.bias_corrections();
        let cfg = self.cfg;
        for (s, g) in self.slots.iter_mut().zip(grad_data) {
            let Some(g) = g else { continue };
            let mut p = s.param.take_value();
            let decay = if s.decay { lr * cfg.weight_decay } else { 0.0 };
            let (step, rsqrt_bc2) = (lr / bc1, 1.0 / bc2.sqrt());
            {
                let pd = p.cpu_data_mut::<f32>()?;
                let md = s.m.cpu_data_mut::<f32>()?;
                let vd = s.v.cpu_data_mut::<f32>()?;
                pd.par_iter_mut().zip(md.par_iter_mut()).zip(vd.par_iter_mut()).zip(g.par_iter()).for_each(
                    |(((p, m), v), &g)| {
                        let g = g * scale;
                        *m = cfg.beta1 * *m + (1.0 - cfg.beta1) * g;
                        *v = cfg.beta2 * *v + (1.0 - cfg.beta2) * g * g;
                        *p -= decay * *p;
                        *p -= step * *m / (v.sqrt() * rsqrt_bc2 + cfg.eps);
                    },
                );
            }
            s.param.set_value(p);
        }
        Ok(StepReport { norm: Some(Tensor::from_vec(vec![norm], [1], &Device::Cpu)?) })
    }

    fn step_gpu(&mut self, lr: f32, device: &Device) -> Result<StepReport> {
        let mut taken: Vec<(usize, Tensor)> = Vec::new();
        let result = self.fused_step(device, lr, &mut taken);
        // Give the values back whatever happened, so that a failed step leaves
        // the model usable.
        for (slot, value) in taken {
            self.slots[slot].param.set_value(value);
        }
        result
    }

    /// The fused step over every parameter that has a gradient; the values
    /// it updates in place are moved into `taken` for the caller to return.
    fn fused_step(&mut self, device: &Device, lr: f32, taken: &mut Vec<(usize, Tensor)>) -> Result<StepReport> {
        let g = device.gpu().expect("a GPU device");
        let mut grads: Vec<Tensor> = Vec::new();
        let mut key: Vec<TableEntry> = Vec::new();
        for (slot, s) in self.slots.iter_mut().enumerate() {
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
        if self.table.as_ref().is_none_or(|t| t.key != key) {
            self.table = Some(ChunkTable::upload(key, device)?);
        }
        let table = self.table.as_ref().expect("built above");
        for (grad, &offset) in grads.iter().zip(&table.offsets) {
            let dst = table.grads.gpu_ptr()? + (offset * 4) as u64;
            g.backend().copy(grad.gpu_ptr()?, dst, grad.elem_count() * 4)?;
        }
        drop(grads);

        let n = i32::try_from(table.rows).map_err(|_| Error::invalid("AdamW", "too many parameter chunks"))?;
        let chunks = table.chunks.gpu_ptr()?;
        let partial = Tensor::empty([table.rows], DType::F32, device)?;
        let clip = Tensor::empty([2], DType::F32, device)?;
        g.launch(&Launch::linear(
            "grad_sq_partials_f32",
            n as u32,
            256,
            &[KernelArg::Ptr(chunks), KernelArg::Ptr(partial.gpu_ptr()?)],
        ))?;
        g.launch(&Launch::linear(
            "clip_coefficient_f32",
            1,
            256,
            &[
                KernelArg::Ptr(partial.gpu_ptr()?),
                KernelArg::I32(n),
                KernelArg::F32(self.cfg.max_grad_norm.unwrap_or(0.0)),
                KernelArg::Ptr(clip.gpu_ptr()?),
            ],
        ))?;
        let (bc1, bc2) = self.bias_corrections();
        g.launch(&Launch::linear(
            "adamw_step_f32",
            n as u32,
            256,
            &[
                KernelArg::Ptr(chunks),
                KernelArg::Ptr(clip.gpu_ptr()?),
                KernelArg::F32(lr),
                KernelArg::F32(self.cfg.beta1),
                KernelArg::F32(self.cfg.beta2),
                KernelArg::F32(self.cfg.eps),
                KernelArg::F32(self.cfg.weight_decay),
                KernelArg::F32(bc1),
                KernelArg::F32(bc2),
            ],
        ))?;
        Ok(StepReport { norm: Some(clip.narrow(0, 0, 1)?) })
    }
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
/// which would wait for the host.
struct ChunkTable {
    key: Vec<TableEntry>,
    chunks: Tensor,
    rows: usize,
    grads: Tensor,
    /// Each entry's first element in `grads`.
    offsets: Vec<usize>,
}

impl ChunkTable {
    fn upload(key: Vec<TableEntry>, device: &Device) -> Result<Self> {
        let total = key.iter().map(|e| e.n).sum::<usize>();
        let grads = Tensor::empty([total], DType::F32, device)?;
        let arena = grads.gpu_ptr()?;
        let (mut rows, mut offsets, mut offset) = (Vec::new(), Vec::new(), 0usize);
        for e in &key {
            offsets.push(offset);
            for start in (0..e.n).step_by(CHUNK) {
                let at = (start * 4) as u64;
                rows.push(AdamChunk {
                    param: e.param + at,
                    grad: arena + ((offset + start) * 4) as u64,
                    m: e.m + at,
                    v: e.v + at,
                    n: CHUNK.min(e.n - start) as i64,
                    decay: e.decay as i32,
                    pad: 0,
                });
            }
            offset += e.n;
        }
        let words: &[u32] = bytemuck::cast_slice(&rows);
        let chunks = Tensor::from_slice(words, [words.len()], device)?;
        Ok(ChunkTable { key, chunks, rows: rows.len(), grads, offsets })
    }
}
