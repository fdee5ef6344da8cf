//! The training step as a CUDA graph. Within a phase every step has the
//! same shapes, so once a plain step has built what steps keep (AdamW's
//! chunk table, the kernels' modules), the next step like it is recorded —
//! reading its batch from input buffers of its own, copying the loss and
//! the gradient norm into output buffers of its own — and replayed to run
//! it; every later one writes its batch and AdamW's scalars into those
//! buffers and replays it: one launch instead of hundreds. A replay does
//! what plain launches do, bit for bit.
//!
//! A recording follows CUDA's rules ([`reclip_core::GpuDevice::capture`]):
//! nothing allocated while recording may outlive it (the parameters'
//! gradients are dropped inside it), nothing from before may be freed in it.
//! A step that cannot be recorded runs with plain launches, and so do the
//! steps after it, with a notice saying why.

use crate::options::TrainOptions;
use crate::step::step_on;
use crate::{AdamW, StepReport, train_step};
use reclip_autograd::Var;
use reclip_core::{DType, Device, DeviceGraph, Error, Indices, Result, Shape, Tensor};
use reclip_model::Clip;
use reclip_model::clip::end_of_text;
use reclip_model::patch_dropout::PatchDropout;
use reclip_optim::StepScalars;
use serde::Serialize;

const OP: &str = "graph step";

/// What `--cuda-graphs` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CudaGraphs {
    /// Steps recorded and replayed on a GPU in one process; plain launches
    /// on the CPU (nothing to record) and with several ranks.
    Auto,
    /// Plain launches.
    Off,
}

impl std::str::FromStr for CudaGraphs {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(CudaGraphs::Auto),
            "off" => Ok(CudaGraphs::Off),
            other => Err(format!("'{other}' is not auto or off")),
        }
    }
}

/// Whether a run's steps were replayed from graphs, for its report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GraphsUsed {
    pub used: bool,
    /// Steps replayed by the invocation that ended the run.
    pub replayed_steps: u64,
    /// Why steps ran as plain launches, if they did from some step on.
    pub plain_because: Option<String>,
}

/// Training steps that record and replay themselves where they can: the
/// same arguments and results as [`train_step`]. As with it, the model's
/// parameters hold no gradient between steps (a recording would refuse to
/// free one made before it).
pub struct GraphStep {
    /// Why steps run as plain launches, once they do.
    plain_because: Option<String>,
    /// Said once: for the caller's log.
    notice: Option<String>,
    /// The last plain step: the next one like it is recorded.
    last_plain: Option<PlainStep>,
    recorded: Option<Recorded>,
    replayed: u64,
}

impl GraphStep {
    /// Steps on `device` that are recorded and replayed on a GPU, and plain
    /// on the CPU.
    pub fn new(device: &Device) -> Self {
        match device {
            Device::Cpu => Self::plain("the CPU records nothing"),
            Device::Gpu(_) => Self::with(None),
        }
    }

    /// Steps in plain launches, `why` being the reason reported.
    pub fn plain(why: impl Into<String>) -> Self {
        Self::with(Some(why.into()))
    }

    fn with(plain_because: Option<String>) -> Self {
        GraphStep { plain_because, notice: None, last_plain: None, recorded: None, replayed: 0 }
    }

    /// The steps of `opts`'s run, as `--cuda-graphs` and the run say. A
    /// data-parallel GPU run, whose step waits on collectives from the
    /// host, leaves a notice saying it runs plain launches.
    pub(crate) fn for_run(opts: &TrainOptions) -> Self {
        match opts.cuda_graphs {
            CudaGraphs::Off => Self::plain("--cuda-graphs off"),
            CudaGraphs::Auto if opts.device.is_cpu() => Self::new(&opts.device),
            CudaGraphs::Auto if opts.accum_freq > 1 => {
                let why = format!("--accum-freq {}: a step's passes are chained from the host", opts.accum_freq);
                let mut step = Self::plain(why.clone());
                step.notice = Some(format!("CUDA graphs: off ({why})"));
                step
            }
            CudaGraphs::Auto if opts.comm.world() > 1 => {
                let why = format!(
                    "data-parallel over {} ranks: a step waits on collectives from the host",
                    opts.comm.world()
                );
                let mut step = Self::plain(why.clone());
                step.notice = Some(format!("CUDA graphs: off ({why})"));
                step
            }
            CudaGraphs::Auto => Self::new(&opts.device),
        }
    }

    /// One step, as [`train_step`] takes it: a plain one the first time a
    /// batch of these shapes comes, recorded and replayed the second time,
    /// replayed after that. The loss and the gradient norm returned are
    /// the step's own (copies of the recording's outputs, made after the
    /// replay), untouched by later steps. Under patch dropout each step's
    /// kept tokens are drawn anew and written into the recording's
    /// indices, like the batch.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        clip: &Clip,
        optimizer: &mut AdamW,
        images: &Tensor,
        tokens: &Tensor,
        dtype: DType,
        lr: f32,
        dropout: Option<&PatchDropout>,
    ) -> Result<(Var, StepReport)> {
        if self.plain_because.is_some() {
            return train_step(clip, optimizer, images, tokens, dtype, lr, dropout);
        }
        let kept = clip.kept_rows(images, dropout)?;
        let shapes = Shapes::of(images, tokens, kept.as_ref(), dtype);
        let addresses = fingerprint(clip, optimizer)?;
        if let Some(recorded) = self.recorded.as_mut()
            && recorded.shapes == shapes
            && recorded.fingerprint == addresses
        {
            recorded.inputs.write(images, tokens, kept)?;
            let step = recorded.run(optimizer, lr)?;
            self.replayed += 1;
            return Ok(step);
        }
        // Recorded after a plain step like it, which left what the recording
        // cannot make (AdamW's table for these parameters and moments).
        if let Some(plain) = self.last_plain.take().filter(|p| p.shapes == shapes && p.fingerprint == addresses) {
            // The old recording's memory goes before the new one takes its own.
            self.recorded = None;
            match Recorded::new(clip, optimizer, images, tokens, dropout, dtype, plain) {
                Ok(recorded) => {
                    let step = self.recorded.insert(recorded).run(optimizer, lr)?;
                    self.replayed += 1;
                    return Ok(step);
                }
                Err(e) => {
                    let why = format!("the step could not be recorded ({e})");
                    self.notice = Some(format!("CUDA graphs: {why}; plain launches"));
                    self.plain_because = Some(why);
                }
            }
        }
        let (loss, report) = train_step(clip, optimizer, images, tokens, dtype, lr, dropout)?;
        if self.plain_because.is_none() {
            self.last_plain = Some(PlainStep::of(shapes, fingerprint(clip, optimizer)?, &loss, &report));
        }
        Ok((loss, report))
    }

    /// Drops the recording and its buffers (at a phase's end: the next
    /// phase's shapes, or the parameters a switch resizes, are others).
    pub fn release(&mut self) {
        self.recorded = None;
        self.last_plain = None;
    }

    /// What the caller's log should say once (the steps turned to plain
    /// launches, or run them from the start for a reason the user may not
    /// expect), when there is something new.
    pub fn take_notice(&mut self) -> Option<String> {
        self.notice.take()
    }

    /// Steps replayed so far.
    pub fn replayed_steps(&self) -> u64 {
        self.replayed
    }

    /// Whether steps were replayed, and why they run as plain launches if
    /// they do.
    pub fn used(&self) -> GraphsUsed {
        GraphsUsed { used: self.replayed > 0, replayed_steps: self.replayed, plain_because: self.plain_because.clone() }
    }
}

/// What a recording depends on of a step's inputs: replaying it takes a
/// batch of the same shapes, as many image tokens kept, in the same
/// precision.
#[derive(Clone, Debug, PartialEq)]
struct Shapes {
    images: Shape,
    images_dtype: DType,
    tokens: Shape,
    kept: Option<usize>,
    dtype: DType,
}

impl Shapes {
    fn of(images: &Tensor, tokens: &Tensor, kept: Option<&Vec<u32>>, dtype: DType) -> Self {
        let (images_dtype, kept) = (images.dtype(), kept.map(Vec::len));
        Shapes { images: images.shape().clone(), images_dtype, tokens: tokens.shape().clone(), kept, dtype }
    }
}

/// A plain step's shapes, the addresses it left the parameters and moments
/// at, and the shapes of its outputs, which a recording of the same step
/// copies into buffers made before it.
struct PlainStep {
    shapes: Shapes,
    fingerprint: Vec<u64>,
    loss: (Shape, DType),
    norm: Option<(Shape, DType)>,
}

impl PlainStep {
    fn of(shapes: Shapes, fingerprint: Vec<u64>, loss: &Var, report: &StepReport) -> Self {
        let of = |t: &Tensor| (t.shape().clone(), t.dtype());
        PlainStep { shapes, fingerprint, loss: of(loss.tensor()), norm: report.norm_tensor().map(of) }
    }
}

/// The parameters' and moments' addresses: the recording wrote into these,
/// so it is replayed only while they stay (a resize or restored moments
/// replace them).
fn fingerprint(clip: &Clip, optimizer: &AdamW) -> Result<Vec<u64>> {
    let mut addresses: Vec<u64> = clip.params().iter().map(|p| p.value().gpu_ptr()).collect::<Result<_>>()?;
    for (_, m, v) in optimizer.moments() {
        addresses.extend([m.gpu_ptr()?, v.gpu_ptr()?]);
    }
    Ok(addresses)
}

/// A recorded step with the buffers it reads and writes. The graph is
/// dropped first.
struct Recorded {
    graph: Box<dyn DeviceGraph>,
    shapes: Shapes,
    fingerprint: Vec<u64>,
    inputs: Inputs,
    scalars: StepScalars,
    loss: Tensor,
    norm: Option<Tensor>,
}

impl Recorded {
    /// Uploads the batch (and the tokens `dropout` keeps of it) into new
    /// input buffers and records a step on them (nothing runs): `plain`
    /// was a step of the same shapes.
    fn new(
        clip: &Clip,
        optimizer: &mut AdamW,
        images: &Tensor,
        tokens: &Tensor,
        dropout: Option<&PatchDropout>,
        dtype: DType,
        plain: PlainStep,
    ) -> Result<Self> {
        let device = clip.device();
        let gpu = device.gpu().ok_or_else(|| Error::invalid(OP, "the CPU records nothing"))?;
        let inputs = Inputs::upload(clip, images, tokens, dropout)?;
        let scalars = StepScalars::new(device)?;
        let loss = Tensor::empty(plain.loss.0, plain.loss.1, device)?;
        let norm = plain.norm.map(|(shape, dtype)| Tensor::empty(shape, dtype, device)).transpose()?;
        let graph = gpu.capture(|| {
            let update = || optimizer.record_step(&scalars);
            let (images, kept) = (&inputs.images, inputs.kept.as_ref());
            let recorded = step_on(clip, images, &inputs.tokens, &inputs.eot, kept, dtype, update)
                .and_then(|(l, report)| copy_outputs(&l, &report, &loss, norm.as_ref()));
            // Gradients made while recording are the recording's: none may
            // outlive it, nor, if it failed, add into the next step's.
            for param in clip.params() {
                param.zero_grad();
            }
            recorded
        })?;
        Ok(Recorded { graph, shapes: plain.shapes, fingerprint: plain.fingerprint, inputs, scalars, loss, norm })
    }

    /// Runs the recorded step on what its input buffers hold, at learning
    /// rate `lr`.
    fn run(&self, optimizer: &mut AdamW, lr: f32) -> Result<(Var, StepReport)> {
        optimizer.prepare_replay(lr, &self.scalars)?;
        self.graph.replay()?;
        // Copies queued after the replay: the next replay rewrites the
        // outputs while the caller may not have read this step's yet.
        let loss = Var::constant(self.loss.copy()?);
        let norm = self.norm.as_ref().map(Tensor::copy).transpose()?;
        Ok((loss, StepReport::from_norm(norm)))
    }
}

/// Inside the recording: the step's loss and gradient norm into the
/// buffers made for them.
fn copy_outputs(loss: &Var, report: &StepReport, loss_out: &Tensor, norm_out: Option<&Tensor>) -> Result<()> {
    copy_into(loss.tensor(), loss_out)?;
    match (report.norm_tensor(), norm_out) {
        (Some(norm), Some(out)) => copy_into(norm, out),
        (None, None) => Ok(()),
        _ => Err(Error::invalid(
            OP,
            "the recorded step reports a gradient norm where the plain one did not, or none where it did",
        )),
    }
}

/// A device copy of `src` into `dst`, of the same shape and dtype.
fn copy_into(src: &Tensor, dst: &Tensor) -> Result<()> {
    if src.shape() != dst.shape() || src.dtype() != dst.dtype() {
        return Err(Error::invalid(
            OP,
            format!("{} {} cannot go into a buffer of {} {}", src.dtype(), src.shape(), dst.dtype(), dst.shape()),
        ));
    }
    let src = src.contiguous()?;
    let gpu = reclip_core::gpu::device_of(dst)?;
    gpu.backend().copy(src.gpu_ptr()?, dst.gpu_ptr()?, src.elem_count() * src.dtype().size_in_bytes())
}

/// A recorded step's batch: the images, the image tokens kept under patch
/// dropout and the text indices it reads.
struct Inputs {
    images: Tensor,
    kept: Option<Indices>,
    tokens: Indices,
    eot: Indices,
}

impl Inputs {
    /// New buffers holding `images`, the tokens `dropout` keeps of them
    /// and the text indices of `tokens`.
    fn upload(clip: &Clip, images: &Tensor, tokens: &Tensor, dropout: Option<&PatchDropout>) -> Result<Self> {
        let (tokens, eot) = clip.text_indices(tokens)?;
        let own = Tensor::empty(images.shape().clone(), images.dtype(), clip.device())?;
        write_tensor(&own, images)?;
        Ok(Inputs { images: own, kept: clip.kept_indices(images, dropout)?, tokens, eot })
    }

    /// Replaces the batch with `images`, the tokens `kept` of them
    /// ([`Clip::kept_rows`]) and `tokens`, of the same shapes, in place:
    /// one upload each of the images, the kept rows, the token ids and the
    /// end-of-text positions.
    fn write(&mut self, images: &Tensor, tokens: &Tensor, kept: Option<Vec<u32>>) -> Result<()> {
        write_tensor(&self.images, images)?;
        match (self.kept.as_mut(), kept) {
            (Some(own), Some(rows)) => {
                let len = rows.len();
                own.rewrite("patch_dropout", rows, [len])?;
            }
            (None, None) => {}
            _ => return Err(Error::invalid(OP, "patch dropout differs from the recorded step's")),
        }
        let (batch, len) = (tokens.dims()[0], tokens.dims()[1]);
        let ids = tokens.to_vec::<u32>()?;
        let eot = end_of_text(&ids, len);
        self.tokens.rewrite("encode_text", ids, tokens.shape().clone())?;
        self.eot.rewrite("encode_text", eot, [batch])
    }
}

/// Writes `src` (on the host: one upload; on the GPU: a device copy) into
/// `dst`, a GPU tensor of the same shape and dtype.
fn write_tensor(dst: &Tensor, src: &Tensor) -> Result<()> {
    if src.shape() != dst.shape() || src.dtype() != dst.dtype() {
        return Err(Error::invalid(OP, format!("a batch of {} cannot go into one of {}", src.shape(), dst.shape())));
    }
    if !src.device().is_cpu() {
        return copy_into(src, dst);
    }
    let src = src.contiguous()?;
    let size = src.dtype().size_in_bytes();
    let start = src.layout().offset() * size;
    let bytes = &src.cpu_storage(OP)?.as_bytes()[start..start + src.elem_count() * size];
    reclip_core::gpu::device_of(dst)?.backend().write(dst.gpu_ptr()?, bytes)
}
