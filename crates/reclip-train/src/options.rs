//! What a run is asked to do, resolved from the command line, and what it
//! builds from that: its phases, a fresh model with its optimizer, and a
//! loader over its data.

use crate::phases::{Phase, Schedule, plan};
use crate::{AdamW, AdamWConfig, CudaGraphs};
use anyhow::Context;
use reclip_core::{DType, Device};
use reclip_data::{
    CaptionEncoder, CsvDataset, CsvOptions, Dataset, Loader, LoaderConfig, ShardList, ShardStream, Slice, StreamConfig,
    Synthetic, SyntheticConfig, WebDataset, ZeroShotSet,
};
use reclip_dist::Comm;
use reclip_model::clip::Clip;
use reclip_model::{FlopsReport, ModelConfig, flops, memory};
use std::path::PathBuf;
use std::sync::Arc;

/// Where training data comes from.
#[derive(Clone, Debug)]
pub enum DataSource {
    /// The built-in synthetic shapes.
    Builtin(SyntheticConfig),
    Csv {
        path: PathBuf,
        options: CsvOptions,
    },
    /// WebDataset tar shards: a list such as `data/{00000..00127}.tar`,
    /// indexed or streamed.
    Shards {
        list: String,
        reader: ShardReader,
        stream: StreamConfig,
    },
}

impl DataSource {
    /// The data as a dataset read by index (shards indexed, whatever their reader).
    pub fn open(&self) -> anyhow::Result<Arc<dyn Dataset>> {
        Ok(match self {
            DataSource::Builtin(cfg) => Synthetic::new(*cfg).train(),
            DataSource::Csv { path, options } => Arc::new(CsvDataset::open(path, options)?),
            DataSource::Shards { list, .. } => Arc::new(WebDataset::open(list)?),
        })
    }
}

/// How tar shards are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardReader {
    /// Streamed when the shards are many or large ([`streams`]), or when a
    /// streaming option asks for it; indexed otherwise.
    Auto,
    /// Every sample indexed at open, then read in any order.
    Random,
    /// Read shard by shard through a shuffle buffer.
    Stream,
}

impl std::str::FromStr for ShardReader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ShardReader::Auto),
            "random" => Ok(ShardReader::Random),
            "stream" => Ok(ShardReader::Stream),
            other => Err(format!("'{other}' is not auto, random or stream")),
        }
    }
}

/// The most shards, and bytes, that `auto` still indexes: an index of at
/// most ~1000 shards opens in seconds from a local disk and holds ~40 bytes
/// a sample (8 GiB of LAION-sized samples: ~300k samples, ~12 MB).
pub const AUTO_INDEX_MAX_SHARDS: usize = 1000;
pub const AUTO_INDEX_MAX_BYTES: u64 = 8 << 30;

/// Whether `auto` streams shards listed as `list`, asked for `stream`.
pub fn streams(list: &ShardList, stream: &StreamConfig) -> bool {
    let asked = stream.resampled || stream.samples_per_epoch.is_some() || *stream != StreamConfig::default();
    asked || list.paths.len() > AUTO_INDEX_MAX_SHARDS || list.total_bytes() > AUTO_INDEX_MAX_BYTES
}

/// An image–caption set for retrieval evaluation, with the name reports use.
#[derive(Clone)]
pub struct RetrievalSet {
    pub name: String,
    pub data: Arc<dyn Dataset>,
}

#[derive(Clone, Copy, Debug)]
pub enum RunLength {
    Steps(u64),
    Epochs(u64),
}

/// What happens to Adam's moments of the positional embedding when a switch
/// of image size resizes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchMoments {
    /// Zeroed: the new grid's positions start without statistics.
    Restart,
    /// Resized like the embedding itself.
    Resize,
}

impl std::str::FromStr for SwitchMoments {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "restart" => Ok(SwitchMoments::Restart),
            "resize" => Ok(SwitchMoments::Resize),
            other => Err(format!("'{other}' is not restart or resize")),
        }
    }
}

/// The contrastive loss a run trains with (`--loss`). A model trains with
/// SigLIP's sigmoid loss when it has a logit bias (its config's
/// `init_logit_bias`), with CLIP's softmax loss otherwise; choosing one sets
/// the model up for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    Clip,
    Siglip,
}

impl std::str::FromStr for Objective {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "clip" => Ok(Objective::Clip),
            "siglip" => Ok(Objective::Siglip),
            other => Err(format!("'{other}' is not clip or siglip")),
        }
    }
}

impl Objective {
    /// The loss `model` trains with as it is.
    pub fn of(model: &ModelConfig) -> Self {
        if model.init_logit_bias.is_some() { Objective::Siglip } else { Objective::Clip }
    }

    /// `model` set up for this loss. SigLIP gets open_clip's `--siglip`
    /// initialisation (t = ln 10, bias −10) unless the config has a bias of
    /// its own; the softmax loss cannot train a model with a bias (it would
    /// never move).
    pub fn configure(self, model: ModelConfig) -> Result<ModelConfig, String> {
        match (self, model.init_logit_bias) {
            (Objective::Siglip, None) => Ok(ModelConfig {
                init_logit_scale: reclip_model::config::SIGLIP_INIT_LOGIT_SCALE,
                init_logit_bias: Some(reclip_model::config::SIGLIP_INIT_LOGIT_BIAS),
                ..model
            }),
            (Objective::Clip, Some(bias)) => Err(format!(
                "the model has a logit bias (init_logit_bias = {bias}), which only SigLIP's loss trains: use --loss siglip"
            )),
            _ => Ok(model),
        }
    }
}

/// Everything a run needs, resolved (the CLI builds it from the options).
#[derive(Clone)]
pub struct TrainOptions {
    pub model_name: String,
    pub model: ModelConfig,
    pub data: DataSource,
    pub batch_size: usize,
    pub length: RunLength,
    /// Peak learning rate of the main phase (and of the baseline).
    pub lr: f32,
    pub warmup: u64,
    /// Peak learning rate of the finetune's own cosine cycle (and of every
    /// later stage's).
    pub finetune_lr: f32,
    /// Warmup steps of each phase after the first (default: a tenth of its steps).
    pub finetune_warmup: Option<u64>,
    pub adam: AdamWConfig,
    pub seed: u64,
    pub device: Device,
    pub precision: DType,
    pub out: PathBuf,
    pub zero_shot: Vec<ZeroShotSet>,
    pub retrieval: Vec<RetrievalSet>,
    pub schedule: Schedule,
    pub switch_moments: SwitchMoments,
    pub log_every: u64,
    /// Evaluate (the first zero-shot set) every this many steps.
    pub eval_every: Option<u64>,
    pub checkpoint_every: Option<u64>,
    /// How many of the newest checkpoints a run keeps (at least 1): with two,
    /// a latest one found corrupt on resume falls back to the one before.
    pub keep_checkpoints: usize,
    /// Continue from the checkpoint in `out`.
    pub resume: bool,
    pub workers: usize,
    pub eval_batch_size: usize,
    /// Timed steps of the high-resolution probe that prices the baseline.
    pub probe_steps: usize,
    pub progress: bool,
    /// Stop after this many steps of this invocation (the phases and their
    /// learning-rate cycles stay those of the whole run): a run cut short on
    /// purpose, to be resumed.
    pub stop_after: Option<u64>,
    /// The job's ranks: this process alone, or one of several that each
    /// train on a slice of every global batch of `batch_size`.
    pub comm: Comm,
    /// Size of the buckets in which gradients are averaged over ranks.
    pub bucket_mib: usize,
    /// Whether steps are recorded as CUDA graphs and replayed.
    pub cuda_graphs: CudaGraphs,
    /// Micro-batches of `batch_size` per optimizer step (open_clip's
    /// `--accum-freq`): the loss is that of all `accum_freq × batch_size`
    /// pairs, activation memory that of one micro-batch.
    pub accum_freq: usize,
    /// FLIP's patch dropout probability in each phase of `schedule`, in the
    /// order of [`Schedule::shapes`] (empty: none); the baseline a run is
    /// priced against takes the last phase's.
    pub patch_dropout: Vec<f64>,
}

/// The run's phases and step count, from the options and the data.
pub fn plan_run(opts: &TrainOptions, batches_per_epoch: usize) -> anyhow::Result<(Vec<Phase>, u64)> {
    let total = match opts.length {
        RunLength::Steps(n) => n,
        RunLength::Epochs(e) => e.checked_mul(batches_per_epoch as u64).with_context(|| {
            format!("--epochs {e}: {e} epochs of {batches_per_epoch} batches are more than 2^64 steps")
        })?,
    };
    let mut phases = plan(&opts.schedule, total).map_err(anyhow::Error::msg)?;
    for p in &mut phases {
        p.patch_dropout = opts.patch_dropout_of(&p.name);
        opts.model.vision_cfg.grid_size(p.image_size).with_context(|| format!("{} phase", p.name))?;
        if p.text_len == 0 || p.text_len > opts.model.text_cfg.context_length {
            anyhow::bail!(
                "{} phase: text length {} is not between 1 and the model's context length {}",
                p.name,
                p.text_len,
                opts.model.text_cfg.context_length
            );
        }
    }
    opts.check_memory()?;
    Ok((phases, total))
}

impl TrainOptions {
    /// Refuses a run whose model, batch and image sizes cannot fit in the
    /// device's memory (a lower-bound estimate from the config), before
    /// anything is allocated or written, rather than dying in the allocator.
    pub fn check_memory(&self) -> anyhow::Result<()> {
        for (name, image_size, text_len) in self.schedule.shapes() {
            self.model.vision_cfg.grid_size(image_size).with_context(|| format!("{name} phase"))?;
            // Each rank holds the activations of its slice of the batch.
            let rank_batch = self.batch_size / self.comm.world();
            let dropout = self.patch_dropout_of(&name);
            let estimate = |cfg: &ModelConfig| {
                memory::training_bytes_dropping(cfg, rank_batch, image_size, text_len, dropout, self.precision)
            };
            let ranks = match self.comm.world() {
                1 => String::new(),
                k => format!(" over {k} ranks"),
            };
            let what = format!(
                "--model {} at --batch-size {}{ranks} and {image_size} px ({name} phase)",
                self.model_name, self.batch_size
            );
            memory::check_fits_on(&self.model, estimate, &self.device, &what)?;
        }
        Ok(())
    }

    /// The pairs of one optimizer step, over all ranks and micro-batches.
    pub fn step_batch(&self) -> usize {
        self.batch_size * self.accum_freq
    }

    /// The patch dropout of the phase named `name` ([`Schedule::shapes`]),
    /// the last phase's for one the schedule does not name (the baseline).
    pub fn patch_dropout_of(&self, name: &str) -> f64 {
        let position = self.schedule.shapes().iter().position(|(n, ..)| n == name);
        position.and_then(|i| self.patch_dropout.get(i)).or(self.patch_dropout.last()).copied().unwrap_or(0.0)
    }

    /// FLOPs per training sample in `phase`: 3× the forward (open_clip's
    /// count) at its shape and the tokens its patch dropout keeps, plus the
    /// forward that accumulation runs twice.
    pub fn flops(&self, phase: &Phase) -> anyhow::Result<FlopsReport> {
        let f = flops::model_dropping(&self.model, phase.image_size, phase.text_len, phase.patch_dropout)?;
        Ok(match self.accum_freq {
            1 => f,
            _ => FlopsReport { training_gflops: f.training_gflops + f.forward_gflops, ..f },
        })
    }

    /// A new model at `image_size`, initialised from `seed`, and its optimizer.
    pub(crate) fn new_model(&self, seed: u64, image_size: usize) -> anyhow::Result<(Clip, AdamW)> {
        let mut clip = Clip::new(self.model.clone(), seed, &self.device)?;
        clip.set_image_size(image_size)?;
        let optimizer = AdamW::new(&clip.params(), self.adam)?;
        Ok((clip, optimizer))
    }

    /// A training loader over the data, shuffled from `seed`: this rank's
    /// slice of each global batch.
    pub(crate) fn loader(&self, encoder: Arc<dyn CaptionEncoder>, seed: u64) -> anyhow::Result<Loader> {
        let slice = Slice { rank: self.comm.rank(), ranks: self.comm.world() };
        let cfg = LoaderConfig { workers: self.workers, slice, ..LoaderConfig::train(self.step_batch(), seed) };
        if let DataSource::Shards { list, reader, stream } = &self.data {
            let shards = ShardList::open(list)?;
            let streamed = match reader {
                ShardReader::Auto => streams(&shards, stream),
                ShardReader::Random => false,
                ShardReader::Stream => true,
            };
            if streamed {
                let stream = Arc::new(ShardStream::new(shards, stream.clone())?);
                return Ok(Loader::streaming(stream, encoder, cfg)?);
            }
        }
        Ok(Loader::new(self.data.open()?, encoder, cfg)?)
    }
}
