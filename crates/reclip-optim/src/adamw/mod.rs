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
//!
//! A step recorded into a CUDA graph ([`AdamW::record_step`]) reads the
//! learning rate and the bias corrections from device memory
//! ([`StepScalars`]) instead of its launch's arguments, which every replay
//! would repeat; [`AdamW::prepare_replay`] writes them before each replay
//! and counts the step as [`AdamW::step`] does.

mod cpu;
mod gpu;

use reclip_autograd::Param;
use reclip_core::{DType, Device, DeviceOp, Error, GpuDevice, Real, Result, Tensor};

const OP: &str = "AdamW";

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
    /// A report of a step whose gradient norm is `norm`, a one-element f32
    /// tensor (a copy of a recorded step's, made after its replay).
    pub fn from_norm(norm: Option<Tensor>) -> Self {
        StepReport { norm }
    }

    /// The global gradient norm (reads it back from the device).
    pub fn grad_norm(&self) -> Result<Option<f32>> {
        self.norm.as_ref().map(|t| t.to_vec_f32().map(|v| v[0])).transpose()
    }

    /// The gradient norm where the step left it, without reading it.
    pub fn norm_tensor(&self) -> Option<&Tensor> {
        self.norm.as_ref()
    }
}

/// One step's learning rate and bias corrections (1 − β₁ᵗ, 1 − β₂ᵗ) in GPU
/// memory, where a recorded step's update reads them at each replay. Made
/// before the recording (memory allocated while recording belongs to it).
pub struct StepScalars(Tensor);

impl StepScalars {
    /// Room for the scalars on `device`, a GPU.
    pub fn new(device: &Device) -> Result<Self> {
        if device.is_cpu() {
            return Err(Error::invalid(OP, "step scalars in device memory are for a GPU step"));
        }
        Ok(StepScalars(Tensor::zeros([3], DType::F32, device)?))
    }
}

pub struct AdamW {
    cfg: AdamWConfig,
    slots: Vec<Slot>,
    step: u64,
    /// The fused GPU step's table of parameters, once built.
    table: Option<gpu::ChunkTable>,
}

impl AdamW {
    /// An optimizer over `params` (f32 master weights); moments start at zero.
    pub fn new(params: &[Param], cfg: AdamWConfig) -> Result<Self> {
        let slots = params
            .iter()
            .map(|p| {
                let v = p.value();
                if v.dtype() != DType::F32 {
                    return Err(Error::DType { op: OP, got: v.dtype(), expected: "f32 master weights" });
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
            let (m, v) = moments(s.param.name())
                .ok_or_else(|| Error::invalid(OP, format!("no optimizer state for parameter {}", s.param.name())))?;
            if m.shape() != s.m.shape() || v.shape() != s.v.shape() {
                return Err(Error::invalid(
                    OP,
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
            .ok_or_else(|| Error::invalid(OP, format!("{} is not optimized", param.name())))
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
                OP,
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
        self.check_moments_fit()?;
        self.step += 1;
        let hyper = Hyper { cfg: self.cfg, lr, bias_corrections: self.bias_corrections(), scalars: None };
        self.update(hyper)
    }

    /// [`AdamW::step`] as a graph records it, on a GPU: the update reads the
    /// learning rate and bias corrections from `scalars` when it runs, so
    /// that each replay takes those [`AdamW::prepare_replay`] last wrote.
    /// Counts no step: recording runs nothing. The gradient norm returned is
    /// the recording's, rewritten by each replay.
    pub fn record_step(&mut self, scalars: &StepScalars) -> Result<StepReport> {
        self.check_moments_fit()?;
        // Not read by the kernel (the scalars are): NaN would show if they were.
        let hyper =
            Hyper { cfg: self.cfg, lr: f32::NAN, bias_corrections: (f32::NAN, f32::NAN), scalars: Some(&scalars.0) };
        self.update(hyper)
    }

    /// Counts a step with learning rate `lr`, as [`AdamW::step`] does, and
    /// writes its scalars into `scalars` in one upload, for the replay of a
    /// step recorded with [`AdamW::record_step`] that follows: the replayed
    /// update is then that of `step(lr)`, bit for bit, and checkpoints keep
    /// the step count.
    pub fn prepare_replay(&mut self, lr: f32, scalars: &StepScalars) -> Result<()> {
        self.check_moments_fit()?;
        let t = &scalars.0;
        let g = t.device().gpu().ok_or_else(|| Error::invalid(OP, "step scalars live on a GPU"))?;
        let (bc1, bc2) = self.bias_corrections_at(self.step + 1);
        g.backend().write(t.gpu_ptr()?, bytemuck::cast_slice(&[lr, bc1, bc2]))?;
        self.step += 1;
        Ok(())
    }

    fn update(&mut self, hyper: Hyper) -> Result<StepReport> {
        let Some(first) = self.slots.first() else { return Ok(StepReport { norm: None }) };
        // The step runs where the parameters live, on their f32 master values.
        let device = first.param.value().device().clone();
        Update { slots: &mut self.slots, table: &mut self.table, hyper }.run_on(&device, DType::F32)
    }

    /// The fused kernel trusts the moments to cover the parameter: a
    /// parameter resized since (a new image size's positional embedding)
    /// would have it write past them. This guards against a caller that
    /// resized a parameter without telling the optimizer (as
    /// `Clip::set_image_size_with` tells it, through a
    /// [`reclip_autograd::FollowsParams`] that resets or resizes the
    /// moments): an error, not a wrong update.
    fn check_moments_fit(&self) -> Result<()> {
        for s in &self.slots {
            let (value, moments) = (s.param.value(), &s.m);
            if value.dims() != moments.dims() {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "{} is now {:?} but its moments are {:?}: call reset_moments after resizing it",
                        s.param.name(),
                        value.dims(),
                        moments.dims()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn bias_corrections(&self) -> (f32, f32) {
        self.bias_corrections_at(self.step)
    }

    /// 1 − β₁ᵗ and 1 − β₂ᵗ at step `t` (counted from 1).
    fn bias_corrections_at(&self, t: u64) -> (f32, f32) {
        let t = t as i32;
        (1.0 - self.cfg.beta1.powi(t), 1.0 - self.cfg.beta2.powi(t))
    }
}

/// The scalars of one step.
#[derive(Clone, Copy)]
struct Hyper<'a> {
    cfg: AdamWConfig,
    lr: f32,
    /// 1 − β₁ᵗ and 1 − β₂ᵗ at this step.
    bias_corrections: (f32, f32),
    /// Where a recorded step reads `lr` and the bias corrections instead.
    scalars: Option<&'a Tensor>,
}

/// One step over every parameter with a gradient. The moments, the values
/// and the GPU's chunk table are updated in place.
struct Update<'a> {
    slots: &'a mut [Slot],
    table: &'a mut Option<gpu::ChunkTable>,
    hyper: Hyper<'a>,
}

impl DeviceOp for Update<'_> {
    type Output = StepReport;
    const NAME: &'static str = OP;

    /// The master weights and moments are f32 whatever `T` is.
    fn cpu<T: Real>(self) -> Result<StepReport> {
        if self.hyper.scalars.is_some() {
            return Err(Error::invalid(OP, "a recorded step runs on a GPU; the CPU records nothing"));
        }
        cpu::step(self.slots, self.hyper)
    }

    fn gpu(self, device: &GpuDevice) -> Result<StepReport> {
        gpu::step(device, self.slots, self.table, self.hyper)
    }
}
