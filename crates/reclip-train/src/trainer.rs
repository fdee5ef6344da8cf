//! The training loop: RECLIP's phases (or the all-high-resolution baseline,
//! or any list of stages), a cosine learning-rate cycle each, with periodic
//! metrics, evaluation and checkpoints, resumable exactly at any step,
//! ending with the report.

use crate::encoder::TokenizerEncoder;
use crate::eval::{Evaluator, RetrievalResult, ZeroShotResult};
use crate::metrics::{EvalMetrics, Line, MetricsLog, StepMetrics};
use crate::phases::{Phase, Schedule, plan};
use crate::report::{self, BaselineEstimate, EvalPoint, PhaseReport, Ratios, Report, SwitchReport, Totals};
use crate::schedule::RunSchedule;
use crate::state::{self, PhaseStats, TrainState};
use crate::{AdamW, AdamWConfig, train_step};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use reclip_core::{DType, Device};
use reclip_data::{
    BatchSpec, CsvDataset, CsvOptions, Dataset, Loader, LoaderConfig, Synthetic, SyntheticConfig, WebDataset,
    ZeroShotSet,
};
use reclip_model::clip::Clip;
use reclip_model::{ModelConfig, flops};
use reclip_tokenizer::ClipTokenizer;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Where training data comes from.
#[derive(Clone, Debug)]
pub enum DataSource {
    /// The built-in synthetic shapes.
    Builtin(SyntheticConfig),
    Csv {
        path: PathBuf,
        options: CsvOptions,
    },
    /// WebDataset tar shards: a list such as `data/{00000..00127}.tar`.
    Shards(String),
}

impl DataSource {
    pub fn open(&self) -> anyhow::Result<Arc<dyn Dataset>> {
        Ok(match self {
            DataSource::Builtin(cfg) => Synthetic::new(*cfg).train(),
            DataSource::Csv { path, options } => Arc::new(CsvDataset::open(path, options)?),
            DataSource::Shards(list) => Arc::new(WebDataset::open(list)?),
        })
    }
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
    /// Continue from the checkpoint in `out`.
    pub resume: bool,
    pub workers: usize,
    pub eval_batch_size: usize,
    /// Timed steps of the high-resolution probe that prices the baseline.
    pub probe_steps: usize,
    pub progress: bool,
    /// Stop after this many steps of this invocation (the schedule still
    /// spans the whole run): a run cut short on purpose, to be resumed.
    pub stop_after: Option<u64>,
}

fn dtype_name(d: DType) -> &'static str {
    d.name()
}

/// The run's phases and step count, from the options and the data.
pub fn plan_run(opts: &TrainOptions, batches_per_epoch: usize) -> anyhow::Result<(Vec<Phase>, u64)> {
    let total = match opts.length {
        RunLength::Steps(n) => n,
        RunLength::Epochs(e) => e * batches_per_epoch as u64,
    };
    let phases = plan(&opts.schedule, total).map_err(anyhow::Error::msg)?;
    for p in &phases {
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
    Ok((phases, total))
}

struct Run<'a> {
    opts: &'a TrainOptions,
    encoder: Arc<TokenizerEncoder>,
    metrics: MetricsLog,
    /// Training PFLOPs spent before the current step.
    pflops: f64,
}

impl Run<'_> {
    fn evaluate(
        &self,
        clip: &Clip,
        image_size: usize,
        text_len: usize,
        all: bool,
    ) -> anyhow::Result<(Vec<ZeroShotResult>, Vec<RetrievalResult>)> {
        let ev = Evaluator {
            clip,
            encoder: self.encoder.clone(),
            dtype: self.opts.precision,
            batch_size: self.opts.eval_batch_size,
            image_size,
            text_len,
            workers: self.opts.workers,
        };
        let sets =
            if all { &self.opts.zero_shot[..] } else { &self.opts.zero_shot[..self.opts.zero_shot.len().min(1)] };
        let zero_shot = sets.iter().map(|s| ev.zero_shot(s)).collect::<anyhow::Result<_>>()?;
        let retrieval = if all {
            self.opts.retrieval.iter().map(|r| ev.retrieval(&r.name, r.data.clone())).collect::<anyhow::Result<_>>()?
        } else {
            Vec::new()
        };
        Ok((zero_shot, retrieval))
    }

    /// Evaluates the first zero-shot set at `image_size` into the metrics,
    /// unless they hold that evaluation of `step` already (a resumed run).
    /// `wall_seconds`: the training time spent so far.
    fn evaluate_once(
        &mut self,
        clip: &Clip,
        step: u64,
        image_size: usize,
        text_len: usize,
        wall_seconds: f64,
    ) -> anyhow::Result<()> {
        let done = self
            .metrics
            .lines
            .iter()
            .any(|l| matches!(l, Line::Eval(e) if e.step == step && e.image_size == image_size));
        if done || self.opts.zero_shot.is_empty() {
            return Ok(());
        }
        let (zero_shot, retrieval) = self.evaluate(clip, image_size, text_len, false)?;
        let line = EvalMetrics { step, train_pflops: self.pflops, wall_seconds, image_size, zero_shot, retrieval };
        self.metrics.push(Line::Eval(line))
    }
}

/// Training time so far: the phases' time up to their clocks' last reading.
fn training_seconds(phases: &[PhaseStats]) -> f64 {
    phases.iter().map(|p| p.wall_seconds).sum()
}

/// Zero-shot top-1 of the first set around each change of image size, from
/// the run's evaluations.
fn switch_reports(phases: &[Phase], evaluations: &[EvalPoint]) -> Vec<SwitchReport> {
    let top1 = |step, size| report::top1_at(evaluations, step, size);
    phases
        .windows(2)
        .filter(|w| w[0].image_size != w[1].image_size)
        .map(|w| SwitchReport {
            step: w[1].start_step,
            from_size: w[0].image_size,
            to_size: w[1].image_size,
            before_at_from: top1(w[1].start_step, w[0].image_size),
            before_at_to: top1(w[1].start_step, w[1].image_size),
            after_at_to: top1(w[1].end_step(), w[1].image_size),
            after_step: w[1].end_step(),
        })
        .collect()
}

/// Measures training throughput at `phase`'s size on a scratch copy of the
/// model: `steps` timed steps after two warm-up steps.
fn probe(opts: &TrainOptions, encoder: Arc<TokenizerEncoder>, phase: &Phase, steps: usize) -> anyhow::Result<f64> {
    let mut clip = Clip::new(opts.model.clone(), opts.seed ^ 0x9e37, &opts.device)?;
    clip.set_image_size(phase.image_size)?;
    let mut optimizer = AdamW::new(&clip.params(), opts.adam)?;
    let cfg = LoaderConfig { workers: opts.workers, ..LoaderConfig::train(opts.batch_size, opts.seed ^ 0x9e37) };
    let mut loader = Loader::new(opts.data.open()?, encoder, cfg)?;
    let spec = BatchSpec { image_size: phase.image_size, context_length: phase.text_len };
    let mut timed = 0.0;
    for i in 0..steps + 2 {
        let batch = loader.next_batch(spec)?;
        let t0 = Instant::now();
        train_step(&clip, &mut optimizer, &batch.images, &batch.tokens, opts.precision, opts.lr)?;
        opts.device.synchronize()?;
        if i >= 2 {
            timed += t0.elapsed().as_secs_f64();
        }
    }
    Ok((steps * opts.batch_size) as f64 / timed)
}

/// Trains as `opts` says and returns the report (also written to
/// `<out>/report.json`, with the plot in `<out>/curves.png`).
pub fn train(opts: &TrainOptions) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&opts.out).with_context(|| format!("--out {}", opts.out.display()))?;
    let encoder = Arc::new(TokenizerEncoder(ClipTokenizer::new()?));
    let dataset = opts.data.open()?;
    let loader_cfg = LoaderConfig { workers: opts.workers, ..LoaderConfig::train(opts.batch_size, opts.seed) };
    let mut loader = Loader::new(dataset, encoder.clone(), loader_cfg)?;
    let (phases, total_steps) = plan_run(opts, loader.batches_per_epoch())?;
    let schedule = RunSchedule::new(&phases, opts.lr, opts.warmup, opts.finetune_lr, opts.finetune_warmup);

    let (mut clip, mut optimizer, mut state) = if opts.resume {
        let state::Checkpoint { clip, moments, optimizer_steps, state } = state::load(&opts.out, &opts.device)?;
        let mut optimizer = AdamW::new(&clip.params(), opts.adam)?;
        optimizer.restore(optimizer_steps, |name| moments.get(name).cloned())?;
        loader.seek(state.position())?;
        if state.phases.len() != phases.len() {
            anyhow::bail!("{}: the checkpoint's run has another schedule", opts.out.display());
        }
        (clip, optimizer, state)
    } else {
        let mut clip = Clip::new(opts.model.clone(), opts.seed, &opts.device)?;
        clip.set_image_size(phases[0].image_size)?;
        let optimizer = AdamW::new(&clip.params(), opts.adam)?;
        let state =
            TrainState { step: 0, loader_epoch: 0, loader_batch: 0, phases: vec![PhaseStats::default(); phases.len()] };
        (clip, optimizer, state)
    };
    let per_sample: Vec<f64> = phases
        .iter()
        .map(|p| Ok(flops::model(&opts.model, p.image_size, p.text_len)?.training_gflops))
        .collect::<anyhow::Result<_>>()?;
    let pflops = phases.iter().zip(&state.phases).zip(&per_sample).map(|((_, s), g)| s.samples as f64 * g / 1e6).sum();
    let mut run = Run {
        opts,
        encoder: encoder.clone(),
        metrics: MetricsLog::open(&opts.out, opts.resume.then_some(state.step))?,
        pflops,
    };

    let bar = if opts.progress { ProgressBar::new(total_steps) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_position(state.step);
    let stop_at = opts.stop_after.map(|n| (state.step + n).min(total_steps)).unwrap_or(total_steps);

    for (pi, phase) in phases.iter().enumerate() {
        if phase.end_step() <= state.step {
            continue;
        }
        if state.step >= stop_at {
            break;
        }
        if pi > 0 && state.step == phase.start_step {
            // The previous phase's model, at its own size and at the new one.
            let prev = &phases[pi - 1];
            for (size, text_len) in [(prev.image_size, prev.text_len), (phase.image_size, phase.text_len)] {
                run.evaluate_once(&clip, state.step, size, text_len, training_seconds(&state.phases))?;
            }
        }
        if clip.set_image_size(phase.image_size)? {
            // The grid changed: Adam's moments of the old grid describe other positions.
            let pos = &clip.weights().visual.positional_embedding;
            match opts.switch_moments {
                SwitchMoments::Restart => optimizer.reset_moments(pos)?,
                SwitchMoments::Resize => optimizer.resize_moments(pos, |t| clip.resize_like_positional_embedding(t))?,
            }
        }
        bar.set_prefix(format!("{} {}px", phase.name, phase.image_size));
        let spec = BatchSpec { image_size: phase.image_size, context_length: phase.text_len };
        let mut window_start = Instant::now();
        let mut window_samples = 0u64;
        let mut phase_clock = Instant::now();
        for step in state.step..phase.end_step().min(stop_at) {
            let batch = loader.next_batch(spec)?;
            let lr = schedule.lr(step);
            let (loss, step_report) =
                train_step(&clip, &mut optimizer, &batch.images, &batch.tokens, opts.precision, lr)?;
            let n = batch.len() as u64;
            state.step = step + 1;
            state.phases[pi].steps += 1;
            state.phases[pi].samples += n;
            window_samples += n;
            run.pflops += n as f64 * per_sample[pi] / 1e6;
            bar.inc(1);
            let last = state.step == phase.end_step() || state.step == stop_at;
            if state.step % opts.log_every == 0 || last {
                let loss = loss.tensor().to_scalar()?;
                opts.device.synchronize()?;
                let elapsed = window_start.elapsed().as_secs_f64();
                let line = StepMetrics {
                    step: state.step,
                    phase: phase.name.clone(),
                    image_size: phase.image_size,
                    text_len: phase.text_len,
                    loss,
                    lr: lr as f64,
                    logit_scale: clip.weights().logit_scale.value().to_scalar()?.exp(),
                    grad_norm: step_report.grad_norm()?.map(f64::from),
                    images_per_second: window_samples as f64 / elapsed.max(1e-9),
                    samples: state.phases.iter().map(|p| p.samples).sum(),
                    train_pflops: run.pflops,
                };
                bar.set_message(format!("loss {loss:.4} {:.0} img/s", line.images_per_second));
                run.metrics.push(Line::Step(line))?;
                window_start = Instant::now();
                window_samples = 0;
            }
            let every = |k: Option<u64>| k.is_some_and(|k| k > 0 && state.step % k == 0);
            if every(opts.eval_every) || every(opts.checkpoint_every) {
                // Time spent evaluating and saving is not training time.
                opts.device.synchronize()?;
                state.phases[pi].wall_seconds += phase_clock.elapsed().as_secs_f64();
                let position = loader.position();
                (state.loader_epoch, state.loader_batch) = (position.epoch, position.batch);
                if every(opts.eval_every) {
                    let wall = training_seconds(&state.phases);
                    run.evaluate_once(&clip, state.step, phase.image_size, phase.text_len, wall)?;
                }
                if every(opts.checkpoint_every) {
                    state::save(&opts.out, &clip, &optimizer, &state)?;
                }
                phase_clock = Instant::now();
                window_start = Instant::now();
                window_samples = 0;
            }
        }
        opts.device.synchronize()?;
        state.phases[pi].wall_seconds += phase_clock.elapsed().as_secs_f64();
    }
    bar.finish_and_clear();
    let position = loader.position();
    (state.loader_epoch, state.loader_batch) = (position.epoch, position.batch);
    state::save(&opts.out, &clip, &optimizer, &state)?;
    clip.save(&opts.out.join("model.safetensors"))?;
    if state.step < total_steps {
        anyhow::bail!(
            "stopped after step {} of {} as asked (--stop-after); resume with --resume {}",
            state.step,
            total_steps,
            opts.out.display()
        );
    }

    let last = phases.last().expect("a plan has phases");
    let (zero_shot, retrieval) = run.evaluate(&clip, last.image_size, last.text_len, true)?;
    run.metrics.push(Line::Eval(EvalMetrics {
        step: state.step,
        train_pflops: run.pflops,
        wall_seconds: training_seconds(&state.phases),
        image_size: last.image_size,
        zero_shot: zero_shot.clone(),
        retrieval: retrieval.clone(),
    }))?;

    let evaluations = report::evaluations(&run.metrics.lines);
    let phase_reports: Vec<PhaseReport> = phases
        .iter()
        .zip(&state.phases)
        .zip(&per_sample)
        .map(|((p, s), &train)| {
            let f = flops::model(&opts.model, p.image_size, p.text_len)?;
            Ok(PhaseReport {
                name: p.name.clone(),
                image_size: p.image_size,
                text_len: p.text_len,
                tokens_per_image: f.image.tokens,
                steps: s.steps,
                samples: s.samples,
                gflops_forward: f.forward_gflops,
                gflops_training: train,
                gflops_elementwise_forward: f.image.forward_elementwise_gflops + f.text.forward_elementwise_gflops,
                total_pflops: s.samples as f64 * train / 1e6,
                wall_seconds: s.wall_seconds,
                images_per_second: s.samples as f64 / s.wall_seconds.max(1e-9),
                zero_shot_top1: report::top1_at(&evaluations, p.end_step(), p.image_size),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let total = Totals {
        steps: phase_reports.iter().map(|p| p.steps).sum(),
        samples: phase_reports.iter().map(|p| p.samples).sum(),
        total_pflops: phase_reports.iter().map(|p| p.total_pflops).sum(),
        wall_seconds: phase_reports.iter().map(|p| p.wall_seconds).sum(),
        images_per_second: 0.0,
    };
    let total = Totals { images_per_second: total.samples as f64 / total.wall_seconds.max(1e-9), ..total };

    let (baseline, ratios) = if matches!(opts.schedule, Schedule::Baseline { .. }) {
        (None, None)
    } else {
        let high = plan(&opts.schedule.baseline(), total_steps).map_err(anyhow::Error::msg)?.remove(0);
        let train = flops::model(&opts.model, high.image_size, high.text_len)?.training_gflops;
        let ips = probe(opts, encoder.clone(), &high, opts.probe_steps)?;
        let samples = total.samples;
        let b = BaselineEstimate {
            image_size: high.image_size,
            text_len: high.text_len,
            steps: total.steps,
            samples,
            gflops_training: train,
            total_pflops: samples as f64 * train / 1e6,
            probe_images_per_second: ips,
            probe_steps: opts.probe_steps,
            estimated_wall_seconds: samples as f64 / ips,
        };
        let r = Ratios {
            flops: b.total_pflops / total.total_pflops.max(1e-30),
            wall_time: b.estimated_wall_seconds / total.wall_seconds.max(1e-9),
        };
        (Some(b), Some(r))
    };
    let data = loader.report();
    let data_problems = if data.is_clean() { Vec::new() } else { data.to_string().lines().map(String::from).collect() };
    let report = Report {
        model: opts.model_name.clone(),
        device: opts.device.name(),
        precision: dtype_name(opts.precision).to_string(),
        schedule: opts.schedule.name().to_string(),
        batch_size: opts.batch_size,
        phases: phase_reports,
        total,
        baseline,
        ratios,
        zero_shot,
        retrieval,
        switches: switch_reports(&phases, &evaluations),
        evaluations,
        data_problems,
    };
    reclip_model::checkpoint::write_atomic(
        &opts.out.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    crate::plot::curves(&run.metrics.lines, &phases, &opts.out.join("curves.png"))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(step: u64, image_size: usize, top1: f64) -> Line {
        let z = ZeroShotResult { name: "set".into(), top1, top5: 1.0, images: 10, classes: 2 };
        Line::Eval(EvalMetrics {
            step,
            train_pflops: 0.0,
            wall_seconds: 0.0,
            image_size,
            zero_shot: vec![z],
            retrieval: Vec::new(),
        })
    }

    #[test]
    fn switches_report_the_evaluations_around_them() {
        let phase = |name: &str, image_size, start_step, steps| Phase {
            name: name.into(),
            image_size,
            text_len: 8,
            start_step,
            steps,
        };
        let phases = [phase("main", 32, 0, 90), phase("finetune", 64, 90, 10)];
        let lines = [eval(90, 32, 0.8), eval(90, 64, 0.5), eval(100, 64, 0.85)];
        let evaluations = report::evaluations(&lines);
        let s = switch_reports(&phases, &evaluations);
        assert_eq!(
            s,
            vec![SwitchReport {
                step: 90,
                from_size: 32,
                to_size: 64,
                before_at_from: Some(0.8),
                before_at_to: Some(0.5),
                after_at_to: Some(0.85),
                after_step: 100
            }]
        );
        assert!(switch_reports(&phases[..1], &evaluations).is_empty());
        assert_eq!(switch_reports(&phases, &evaluations[2..])[0].before_at_to, None);
    }
}
