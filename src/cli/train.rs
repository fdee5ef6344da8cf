//! `reclip train` and the options it shares with `reclip compare`.

use super::device::DeviceArgs;
use super::run_dir;
use anyhow::{Context, bail};
use clap::{ArgMatches, Args};
use reclip_core::{DType, Device};
use reclip_data::{
    CsvOptions, ImageFolder, StreamConfig, Synthetic, SyntheticConfig, ZeroShotSet, parse_separator, read_templates,
};
use reclip_model::ModelConfig;
use reclip_train::phases::{Finetune, Schedule, parse_patch_dropout, parse_stages};
use reclip_train::trainer::{
    DataSource, Objective, Outcome, RetrievalSet, RunLength, ShardReader, SwitchMoments, TrainOptions,
};
use reclip_train::{AdamWConfig, CudaGraphs, trainer};
use std::path::{Path, PathBuf};

#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    /// Model: a preset (reclip-tiny, reclip-small, ViT-B-32, ViT-B-16, ViT-L-14, ...) or an open_clip JSON config.
    #[arg(long, default_value = "reclip-tiny")]
    pub model: String,
    /// Training data: `builtin` (synthetic shapes), a CSV/TSV list, or WebDataset shards (`data/{00000..00127}.tar`).
    #[arg(long, default_value = "builtin")]
    pub data: String,
    #[command(flatten)]
    pub csv: CsvArgs,
    #[command(flatten)]
    pub shards: ShardArgs,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Training steps (default: 2000, unless --epochs is given).
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<u64>,
    /// Passes over the training data, instead of --steps.
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Peak learning rate (after warmup; cosine decay to zero at the end of
    /// the main phase, or of the run for the baseline).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f32,
    /// Peak learning rate of the finetune (and of each stage after the first),
    /// which warms up over a tenth of its steps and decays to zero at its end
    /// (default: --lr; a lower one leaves the image tower short of adapting
    /// to the new patch grid).
    #[arg(long)]
    pub finetune_lr: Option<f32>,
    /// Warmup steps of the finetune (and of each stage after the first);
    /// default: a tenth of its steps.
    #[arg(long)]
    pub finetune_warmup: Option<u64>,
    /// AdamW weight decay (not applied to gains, biases, embeddings, logit scale).
    #[arg(long, default_value_t = 0.1)]
    pub wd: f32,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 50)]
    pub warmup: u64,
    /// Clip the global gradient norm to this (0 disables clipping).
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// f32 or bf16 (default: bf16 on a GPU, f32 on the CPU).
    #[arg(long)]
    pub precision: Option<String>,
    /// Where checkpoints, metrics.jsonl, report.json and curves.png go.
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    #[command(flatten)]
    pub eval: EvalSetArgs,
    /// reclip (low resolution, then a high-resolution finetune) or baseline (every step at high resolution).
    #[arg(long, default_value = "reclip")]
    pub schedule: String,
    /// Image size of RECLIP's main phase (default: 4x4 patches, 17 tokens —
    /// the paper's 64 px for ViT-B-16 — or the high resolution if smaller).
    #[arg(long)]
    pub low_res: Option<usize>,
    /// Image size of the finetune (and of the baseline); default: the model's image size.
    #[arg(long)]
    pub high_res: Option<usize>,
    /// Text length of the main phase (default: the full text length).
    #[arg(long)]
    pub low_text_len: Option<usize>,
    /// Text length of the finetune and the baseline (default: the model's context length).
    #[arg(long)]
    pub text_len: Option<usize>,
    /// Fraction of the steps spent in the high-resolution finetune.
    #[arg(long, default_value_t = 0.1, conflicts_with = "finetune_steps")]
    pub finetune_fraction: f64,
    /// Steps of the high-resolution finetune, instead of --finetune-fraction.
    #[arg(long)]
    pub finetune_steps: Option<u64>,
    /// Stages instead of RECLIP's two phases: `size[:text_len]:share,...`, the
    /// shares adding up to 1 (e.g. `64:0.8,160:0.15,224:0.05`; text length
    /// default: --text-len). The baseline trains at the last stage's shape.
    #[arg(
        long,
        conflicts_with_all = ["schedule", "low_res", "high_res", "low_text_len", "finetune_fraction", "finetune_steps"]
    )]
    pub stages: Option<String>,
    /// What Adam's moments of the positional embedding do when a switch of
    /// image size resizes it: restart (zeroed) or resize (interpolated as
    /// the embedding is).
    #[arg(long, default_value = "restart")]
    pub switch_moments: String,
    /// Write metrics every this many steps.
    #[arg(long, default_value_t = 10)]
    pub log_every: u64,
    /// Evaluate zero-shot every this many steps (0: only at the end).
    #[arg(long, default_value_t = 200)]
    pub eval_every: u64,
    /// Save a checkpoint every this many steps (0: only at the end).
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: u64,
    /// Continue the run saved in this folder, exactly where it stopped (its
    /// options are reused; --lr and --finetune-lr may be lowered).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Replace the run already in --out (its run.json, metrics, checkpoints,
    /// report and model; other files stay).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// How many of the newest checkpoints to keep: with 2 or more, a latest
    /// checkpoint found corrupt on resume falls back to the one before.
    #[arg(long, default_value_t = 2)]
    pub keep_checkpoints: usize,
    /// Stop after this many steps of this invocation; continue later with --resume.
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// Data loading threads (default: one per core, shared among the ranks of a machine).
    #[arg(long)]
    pub workers: Option<usize>,
    /// How ranks launched by mpirun or srun share their work: auto (MPI
    /// under a launcher of several ranks, NCCL between their GPUs in a build
    /// with it; one process otherwise), single, mpi or nccl. --batch-size is
    /// the global batch, split evenly among the ranks.
    #[arg(long, default_value = "auto")]
    pub dist_backend: String,
    /// Size in MiB of the buckets in which gradients are averaged over ranks
    /// while the backward pass runs.
    #[arg(long, default_value_t = reclip_dist::DEFAULT_BUCKET_MIB)]
    pub bucket_mib: usize,
    /// Timed steps of the high-resolution probe that prices the baseline.
    #[arg(long, default_value_t = 10)]
    pub probe_steps: usize,
    /// The contrastive loss: clip (CLIP's softmax loss) or siglip (SigLIP's
    /// sigmoid loss, with a learnable logit bias initialised as open_clip's
    /// --siglip does: scale ln 10, bias -10, unless the model config sets
    /// init_logit_bias). Default: the model's (siglip for a config with
    /// init_logit_bias, clip otherwise).
    #[arg(long)]
    pub loss: Option<String>,
    /// Micro-batches of --batch-size per optimizer step (open_clip's
    /// --accum-freq): the loss is taken over all of them at once, exactly,
    /// while activation memory is that of one; each sample's towers run
    /// forward twice (4× the forward FLOPs a sample, which the report counts).
    #[arg(long, default_value_t = 1)]
    pub accum_freq: usize,
    /// FLIP's patch dropout: the share of each image's patches dropped in
    /// training, one for every phase or one per phase in order (`0.5,0`:
    /// FLIP's 50%, none in the last phase); off at evaluation. Default: the
    /// model config's vision_cfg.patch_dropout in every phase. The baseline
    /// trains with the last phase's.
    #[arg(long)]
    pub patch_dropout: Option<String>,
    /// auto (each phase's step recorded once as a CUDA graph and replayed,
    /// on a GPU in one process) or off (plain kernel launches).
    #[arg(long, default_value = "auto")]
    pub cuda_graphs: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// How CSV/TSV lists are read (open_clip's option names and defaults).
#[derive(Args, Clone, Debug)]
pub struct CsvArgs {
    /// CSV/TSV column holding the image path.
    #[arg(long, default_value = "filepath")]
    pub csv_img_key: String,
    /// CSV/TSV column holding the caption.
    #[arg(long, default_value = "title")]
    pub csv_caption_key: String,
    /// CSV/TSV separator: one character, or `\t`.
    #[arg(long, default_value = "\\t")]
    pub csv_separator: String,
}

/// How WebDataset shards are read (streaming after open_clip's options).
#[derive(Args, Clone, Debug)]
pub struct ShardArgs {
    /// How tar shards are read: auto (streamed past 1000 shards or 8 GiB, or
    /// when a streaming option below is given; indexed otherwise), random
    /// (every sample indexed when opened, then read in any order) or stream
    /// (shard by shard through a shuffle buffer; opening reads no shard).
    #[arg(long, default_value = "auto")]
    pub data_reader: String,
    /// Streaming: samples the shuffle buffer holds (open_clip's default).
    #[arg(long, default_value_t = reclip_data::DEFAULT_SHUFFLE_BUFFER)]
    pub shuffle_buffer: usize,
    /// Streaming: sequential shard readers per rank, each on its own shards.
    #[arg(long, default_value_t = reclip_data::DEFAULT_READERS)]
    pub shard_readers: usize,
    /// Streaming: draw shards with replacement (open_clip's --dataset-resampled).
    #[arg(long, alias = "dataset-resampled")]
    pub resampled: bool,
    /// Streaming: an epoch's length in samples (open_clip's
    /// --train-num-samples; default: the sum of the shards' sizes.json counts).
    #[arg(long, alias = "train-num-samples")]
    pub samples_per_epoch: Option<u64>,
}

impl ShardArgs {
    /// The reader and streaming options, checked.
    fn resolve(&self) -> anyhow::Result<(ShardReader, StreamConfig)> {
        let reader: ShardReader = self.data_reader.parse().map_err(|e| anyhow::anyhow!("--data-reader: {e}"))?;
        let max_buffer = reclip_data::MAX_SHUFFLE_BUFFER;
        if self.shuffle_buffer == 0 || self.shuffle_buffer > max_buffer {
            bail!("--shuffle-buffer {}: expected 1 to {max_buffer} samples", self.shuffle_buffer);
        }
        if self.shard_readers == 0 || self.shard_readers > reclip_data::MAX_READERS {
            bail!("--shard-readers {}: expected 1 to {}", self.shard_readers, reclip_data::MAX_READERS);
        }
        if self.samples_per_epoch == Some(0) {
            bail!("--samples-per-epoch 0: an epoch needs at least one batch of samples");
        }
        let stream = StreamConfig {
            shuffle_buffer: self.shuffle_buffer,
            readers: self.shard_readers,
            resampled: self.resampled,
            samples_per_epoch: self.samples_per_epoch,
        };
        if reader == ShardReader::Random && stream != StreamConfig::default() {
            bail!(
                "--data-reader random: the streaming options (--resampled, --samples-per-epoch, --shuffle-buffer, --shard-readers) need streamed shards"
            );
        }
        Ok((reader, stream))
    }

    /// The option of those given that only streamed shards take, if any.
    fn streaming_option(&self) -> Option<&'static str> {
        let default = StreamConfig::default();
        [
            (self.data_reader != "auto", "--data-reader"),
            (self.shuffle_buffer != default.shuffle_buffer, "--shuffle-buffer"),
            (self.shard_readers != default.readers, "--shard-readers"),
            (self.resampled, "--resampled"),
            (self.samples_per_epoch.is_some(), "--samples-per-epoch"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }
}

/// The evaluation sets.
#[derive(Args, Clone, Debug)]
pub struct EvalSetArgs {
    /// Zero-shot evaluation set: an ImageFolder (a folder per class). Default with built-in data: the built-in sets.
    #[arg(long)]
    pub eval_zero_shot: Option<PathBuf>,
    /// Class names for --eval-zero-shot, one per line in the folders' sorted order.
    #[arg(long)]
    pub classnames: Option<PathBuf>,
    /// Prompt templates for zero-shot, one per line with {} for the class name (default: "a photo of a {}.").
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Retrieval evaluation set: a CSV/TSV list or tar shards.
    #[arg(long)]
    pub eval_retrieval: Option<String>,
}

fn builtin_config(seed: u64) -> SyntheticConfig {
    SyntheticConfig { seed, ..SyntheticConfig::default() }
}

/// Whether a data option names tar shards.
fn names_shards(data: &str) -> bool {
    data.ends_with(".tar") || data.contains(".tar::") || data.ends_with('}')
}

/// The training data `--data` names, read as `shards` says if it is tar shards.
fn train_source(args: &TrainArgs) -> anyhow::Result<DataSource> {
    if names_shards(&args.data) {
        let (reader, stream) = args.shards.resolve()?;
        return Ok(DataSource::Shards { list: args.data.clone(), reader, stream });
    }
    if let Some(option) = args.shards.streaming_option() {
        bail!("{option}: applies to WebDataset tar shards, and --data {} names none", args.data);
    }
    data_source(&args.data, &args.csv, args.seed)
}

/// The data source an option names: `builtin`, tar shards (indexed), or a CSV/TSV list.
pub fn data_source(data: &str, csv: &CsvArgs, seed: u64) -> anyhow::Result<DataSource> {
    if data == "builtin" {
        return Ok(DataSource::Builtin(builtin_config(seed)));
    }
    if names_shards(data) {
        let list = data.to_string();
        return Ok(DataSource::Shards { list, reader: ShardReader::Random, stream: StreamConfig::default() });
    }
    let separator = parse_separator(&csv.csv_separator).context("--csv-separator")?;
    let options =
        CsvOptions { separator, image_key: csv.csv_img_key.clone(), caption_key: csv.csv_caption_key.clone() };
    Ok(DataSource::Csv { path: PathBuf::from(data), options })
}

/// Zero-shot and retrieval sets: the options', or the built-in ones when
/// `builtin` (training on built-in data, or evaluating without sets).
pub fn eval_sets(
    sets: &EvalSetArgs,
    csv: &CsvArgs,
    builtin: bool,
    seed: u64,
) -> anyhow::Result<(Vec<ZeroShotSet>, Vec<RetrievalSet>)> {
    let mut zero_shot = Vec::new();
    let mut retrieval = Vec::new();
    let synthetic = Synthetic::new(builtin_config(seed));
    match &sets.eval_zero_shot {
        Some(dir) => {
            let templates = match &sets.templates {
                Some(path) => read_templates(path).context("--templates")?,
                None => reclip_data::DEFAULT_TEMPLATES.iter().map(|s| s.to_string()).collect(),
            };
            let folder = ImageFolder::open(dir, sets.classnames.as_deref()).context("--eval-zero-shot")?;
            zero_shot.push(folder.into_zero_shot(templates));
        }
        None if builtin => {
            zero_shot.push(synthetic.colour_shape_classes(10));
            zero_shot.push(synthetic.shape_classes(40));
        }
        None => {}
    }
    match &sets.eval_retrieval {
        Some(spec) => {
            let source = data_source(spec, csv, seed)?;
            retrieval.push(RetrievalSet { name: spec.clone(), data: source.open().context("--eval-retrieval")? });
        }
        None if builtin => retrieval.push(RetrievalSet { name: "builtin".into(), data: synthetic.retrieval(500) }),
        None => {}
    }
    Ok((zero_shot, retrieval))
}

/// `--precision`, defaulting to bf16 on a GPU and f32 on the CPU.
pub fn precision(arg: &Option<String>, device: &Device) -> anyhow::Result<DType> {
    match arg.as_deref() {
        None => Ok(if device.is_cpu() { DType::F32 } else { DType::BF16 }),
        Some("f32") => Ok(DType::F32),
        Some("bf16") => Ok(DType::BF16),
        Some(other) => bail!("--precision {other}: expected f32 or bf16"),
    }
}

/// The schedule the options describe — `--stages`, or RECLIP's two phases —
/// or, when `baseline`, its baseline.
fn schedule(args: &TrainArgs, model: &ModelConfig, baseline: bool) -> anyhow::Result<Schedule> {
    let context_length = model.text_cfg.context_length;
    let text_len = super::numbers::text_len(args.text_len, context_length)?;
    let schedule = match &args.stages {
        Some(spec) => {
            let stages = parse_stages(spec, text_len).map_err(|e| anyhow::anyhow!("--stages {spec}: {e}"))?;
            if let Some((i, s)) = stages.iter().enumerate().find(|(_, s)| !(1..=context_length).contains(&s.text_len)) {
                bail!(
                    "--stages {spec}: stage{} has text length {}, expected 1 to the model's context length, {context_length} tokens",
                    i + 1,
                    s.text_len
                );
            }
            Schedule::Stages(stages)
        }
        None => {
            let high_res = args.high_res.unwrap_or(model.vision_cfg.image_size);
            let low_res = args.low_res.unwrap_or((4 * model.vision_cfg.patch_size).min(high_res));
            for (option, size) in [("--high-res", high_res), ("--low-res", low_res)] {
                model.vision_cfg.grid_size(size).with_context(|| format!("{option} {size}"))?;
            }
            if low_res > high_res {
                bail!(
                    "--low-res {low_res} is above the high resolution {high_res} (the model's image size unless --high-res)"
                );
            }
            let low_text_len = args.low_text_len.unwrap_or(text_len);
            if low_text_len == 0 {
                bail!("--low-text-len 0: a caption needs at least one token");
            }
            if low_text_len > text_len {
                bail!(
                    "--low-text-len {low_text_len} is above the text length {text_len} (the model's context length unless --text-len)"
                );
            }
            Schedule::Reclip {
                low_res,
                low_text_len,
                high_res,
                high_text_len: text_len,
                finetune: match args.finetune_steps {
                    Some(s) => Finetune::Steps(s),
                    None => Finetune::Fraction(args.finetune_fraction),
                },
            }
        }
    };
    Ok(if baseline { schedule.baseline() } else { schedule })
}

/// Each phase's patch dropout (in the order of `schedule`'s phases): as
/// `--patch-dropout` says, for the phases of the run's own schedule when
/// `schedule` is its `baseline` (which takes the last), or the config's.
fn patch_dropout(
    args: &TrainArgs,
    model: &ModelConfig,
    schedule: &Schedule,
    baseline: bool,
) -> anyhow::Result<Vec<f64>> {
    let phases = schedule.shapes().len();
    let Some(spec) = &args.patch_dropout else {
        return Ok(vec![model.vision_cfg.patch_dropout; phases]);
    };
    let run_phases = if baseline { self::schedule(args, model, false)?.shapes().len() } else { phases };
    let probs = parse_patch_dropout(spec, run_phases).map_err(|e| anyhow::anyhow!("--patch-dropout {spec}: {e}"))?;
    Ok(if baseline { probs[run_phases - 1..].to_vec() } else { probs })
}

/// Whether `--schedule` names the baseline.
fn is_baseline(args: &TrainArgs) -> anyhow::Result<bool> {
    match args.schedule.as_str() {
        "reclip" => Ok(false),
        "baseline" => Ok(true),
        other => bail!("--schedule {other}: expected reclip or baseline"),
    }
}

/// Resolves the options into a run: the baseline of their schedule when `baseline`.
pub fn options(args: &TrainArgs, baseline: bool, out: &Path, resume: bool) -> anyhow::Result<TrainOptions> {
    super::numbers::check(args)?;
    let host = super::ranks::start(&args.dist_backend)?;
    if !args.batch_size.is_multiple_of(host.world()) {
        bail!(
            "--batch-size {} is not divisible by the {} ranks: each trains on an equal slice",
            args.batch_size,
            host.world()
        );
    }
    let mut model = ModelConfig::load(&args.model).with_context(|| format!("--model {}", args.model))?;
    if let Some(loss) = &args.loss {
        let objective: Objective = loss.parse().map_err(|e| anyhow::anyhow!("--loss: {e}"))?;
        model = objective
            .configure(model)
            .map_err(|e| anyhow::anyhow!("--loss {loss} with --model {}: {e}", args.model))?;
    }
    let device = args.device.open_at(host.local_rank())?;
    let comm = super::ranks::on_device(&args.dist_backend, &device)?;
    let precision = precision(&args.precision, &device)?;
    let schedule = schedule(args, &model, baseline)?;
    let patch_dropout = patch_dropout(args, &model, &schedule, baseline)?;
    let switch_moments: SwitchMoments =
        args.switch_moments.parse().map_err(|e| anyhow::anyhow!("--switch-moments: {e}"))?;
    let cuda_graphs: CudaGraphs = args.cuda_graphs.parse().map_err(|e| anyhow::anyhow!("--cuda-graphs: {e}"))?;
    let length = match (args.steps, args.epochs) {
        (_, Some(e)) => RunLength::Epochs(e),
        (Some(s), None) => RunLength::Steps(s),
        (None, None) => RunLength::Steps(2000),
    };
    let (zero_shot, retrieval) = eval_sets(&args.eval, &args.csv, args.data == "builtin", args.seed)?;
    let opts = TrainOptions {
        model_name: args.model.clone(),
        model,
        data: train_source(args)?,
        batch_size: args.batch_size,
        length,
        lr: args.lr,
        warmup: args.warmup,
        finetune_lr: args.finetune_lr.unwrap_or(args.lr),
        finetune_warmup: args.finetune_warmup,
        adam: AdamWConfig {
            weight_decay: args.wd,
            max_grad_norm: (args.grad_clip > 0.0).then_some(args.grad_clip),
            ..AdamWConfig::default()
        },
        seed: args.seed,
        device,
        precision,
        out: out.to_path_buf(),
        zero_shot,
        retrieval,
        schedule,
        switch_moments,
        log_every: args.log_every.max(1),
        eval_every: (args.eval_every > 0).then_some(args.eval_every),
        checkpoint_every: (args.checkpoint_every > 0).then_some(args.checkpoint_every),
        keep_checkpoints: args.keep_checkpoints,
        resume,
        workers: args.workers.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / comm.local_world()).max(1)
        }),
        eval_batch_size: args.batch_size.max(64),
        probe_steps: args.probe_steps,
        progress: !args.quiet,
        stop_after: args.stop_after,
        comm,
        bucket_mib: args.bucket_mib,
        cuda_graphs,
        accum_freq: args.accum_freq,
        patch_dropout,
    };
    opts.check_memory()?;
    Ok(opts)
}

/// `reclip train`: a new run into `--out`, or the run `--resume` names
/// continued; `matches` tell which options were given.
pub fn run(args: TrainArgs, matches: &ArgMatches) -> anyhow::Result<()> {
    let (args, out, resume) = match &args.resume {
        Some(dir) => (resumed_args(&args, matches, dir)?, dir.clone(), true),
        None => {
            let out = args.out.clone();
            (args, out, false)
        }
    };
    // Resolved before anything is written: a refused run leaves --out as it was.
    let opts = options(&args, is_baseline(&args)?, &out, resume)?;
    // Ranks started with other options would train apart; rank 0 alone writes.
    super::ranks::check_same_command(&opts.comm)?;
    if opts.comm.is_leader() {
        prepare_out(&args, matches, &out, resume)?;
    }
    match trainer::train(&opts)? {
        _ if !opts.comm.is_leader() => {}
        Outcome::Finished(report) => {
            print!("{}", report.table());
            println!(
                "report: {}, metrics: {}, plot: {}, model: {}",
                out.join("report.json").display(),
                out.join("metrics.jsonl").display(),
                out.join("curves.png").display(),
                out.join("model.safetensors").display()
            );
        }
        Outcome::Stopped { step, total } => println!(
            "stopped after step {step} of {total} as asked (--stop-after); continue with `reclip train --resume {}`",
            out.display()
        ),
    }
    Ok(())
}

/// Rank 0's setting up of `--out`: a resumed run records a lowered learning
/// rate; a new one claims the folder and records how it was started.
fn prepare_out(args: &TrainArgs, matches: &ArgMatches, out: &Path, resume: bool) -> anyhow::Result<()> {
    if resume {
        for (id, option, value) in [("lr", "--lr", Some(args.lr)), ("finetune_lr", "--finetune-lr", args.finetune_lr)] {
            if let Some(v) = value.filter(|_| run_dir::given(matches, id)) {
                run_dir::update_saved(out, option, &v.to_string())?;
            }
        }
        return Ok(());
    }
    run_dir::claim(out, args.overwrite, run_dir::TRAIN_OUTPUTS, "--out")?;
    std::fs::create_dir_all(out).with_context(|| format!("--out {}", out.display()))?;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    run_dir::record(out, &argv, &std::env::current_dir().context("the working folder")?)
}

/// The options of the run in `dir`, as its run.json saved them, with what
/// this invocation may change applied.
fn resumed_args(args: &TrainArgs, matches: &ArgMatches, dir: &Path) -> anyhow::Result<TrainArgs> {
    run_dir::check_resume_options(matches, dir)?;
    let mut saved: TrainArgs = super::parse_train_args(&run_dir::saved_args(dir)?)?;
    saved.stop_after = args.stop_after;
    saved.quiet = args.quiet;
    saved.workers = args.workers.or(saved.workers);
    saved.keep_checkpoints = args.keep_checkpoints;
    if run_dir::given(matches, "lr") {
        saved.lr = args.lr;
    }
    if run_dir::given(matches, "finetune_lr") {
        saved.finetune_lr = args.finetune_lr;
    }
    if run_dir::given(matches, "device") || run_dir::given(matches, "tf32") {
        saved.device = args.device.clone();
    }
    if run_dir::given(matches, "cuda_graphs") {
        saved.cuda_graphs = args.cuda_graphs.clone();
    }
    saved.dist_backend = args.dist_backend.clone();
    saved.bucket_mib = args.bucket_mib;
    Ok(saved)
}
