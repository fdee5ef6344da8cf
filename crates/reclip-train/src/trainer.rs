//! The training loop: RECLIP's phases (or the all-high-resolution baseline,
//! or any list of stages), a cosine learning-rate cycle each, with periodic
//! metrics, evaluation and checkpoints, resumable exactly at any step,
//! ending with the report.
//!
//! With several ranks, every rank runs this loop on its slice of each
//! global batch ([`DataParallel`]); rank 0 alone evaluates and writes the
//! metrics, checkpoints, model, report and plot, while the others wait for
//! it at the next collective. Every rank resumes from rank 0's checkpoint,
//! whatever the number of ranks that wrote it.

mod evaluation;
mod start;

pub use crate::options::{
    DataSource, Objective, RetrievalSet, RunLength, ShardReader, SwitchMoments, TrainOptions, plan_run,
};

use crate::baseline::{self, Baseline};
use crate::eval::{RetrievalResult, ZeroShotResult};
use crate::metrics::{Line, MetricsLog, StepMetrics};
use crate::parallel;
use crate::phases::Phase;
use crate::report::{Report, RunRecord};
use crate::schedule::RunSchedule;
use crate::state::{self, TrainState};
use crate::{AdamW, DataParallel, GraphStep, StepReport};
use anyhow::Context;
use indicatif::ProgressBar;
use reclip_autograd::{FollowsParams, Param, Var};
use reclip_core::Tensor;
use reclip_core::cpu::threads::on_pool;
use reclip_data::{Loader, StreamState};
use reclip_model::FlopsReport;
use reclip_model::clip::Clip;
use reclip_tokenizer::ClipTokenizer;
use std::sync::Arc;
use std::time::Instant;

/// How an invocation of [`train`] ended.
pub enum Outcome {
    /// The run is complete: its report (also written to `<out>/report.json`,
    /// with the plot in `<out>/curves.png`).
    Finished(Box<Report>),
    /// Stopped after `step` of `total` steps as asked (`--stop-after`), with
    /// a checkpoint to resume from.
    Stopped { step: u64, total: u64 },
}

/// Trains as `opts` says: to the end of the run, or to where `--stop-after`
/// stops this invocation. The run goes on a thread of the compute pool
/// ([`on_pool`]), after the ranks have sized it.
pub fn train(opts: &TrainOptions) -> anyhow::Result<Outcome> {
    on_pool(|| train_on_this_thread(opts))
}

fn train_on_this_thread(opts: &TrainOptions) -> anyhow::Result<Outcome> {
    let leader = opts.comm.is_leader();
    if leader {
        std::fs::create_dir_all(&opts.out).with_context(|| format!("--out {}", opts.out.display()))?;
    }
    let mut trainer = if opts.resume { Trainer::resume(opts)? } else { Trainer::new(opts)? };
    for phase in 0..trainer.phases.len() {
        trainer.run_phase(phase)?;
    }
    trainer.finish()?;
    if trainer.state.step < trainer.total_steps {
        return Ok(Outcome::Stopped { step: trainer.state.step, total: trainer.total_steps });
    }
    let (zero_shot, retrieval) = trainer.evaluate_final()?;
    let baseline = baseline::price(opts, trainer.encoder.clone(), trainer.total_steps)?;
    let report = trainer.report(zero_shot, retrieval, baseline);
    if leader {
        let json = serde_json::to_string_pretty(&report)?;
        reclip_core::fs::write_atomic(&opts.out.join("report.json"), json.as_bytes())?;
        crate::plot::curves(&trainer.metrics.lines, &trainer.phases, &opts.out.join("curves.png"))?;
    }
    Ok(Outcome::Finished(Box::new(report)))
}

/// A run in progress: its plan and data, the model and optimizer, where it
/// stands, and what it has logged.
struct Trainer<'a> {
    opts: &'a TrainOptions,
    encoder: Arc<ClipTokenizer>,
    loader: Loader,
    phases: Vec<Phase>,
    /// Each phase's FLOPs per sample.
    flops: Vec<FlopsReport>,
    schedule: RunSchedule,
    total_steps: u64,
    /// Where this invocation stops: the run's end, or sooner with `--stop-after`.
    stop_at: u64,
    clip: Clip,
    optimizer: AdamW,
    /// This rank's part when there are several.
    parallel: Option<DataParallel>,
    /// One process's steps, replayed from CUDA graphs where they can be.
    graphs: GraphStep,
    state: TrainState,
    metrics: MetricsLog,
    /// The last step's loss and gradient norm, until checked.
    unchecked: Option<Unchecked>,
    /// Training PFLOPs spent before the current step.
    pflops: f64,
    bar: ProgressBar,
    clock: Clock,
}

impl Trainer<'_> {
    /// Trains phase `pi` from where the run stands to the phase's end, or to
    /// where this invocation stops; nothing when the run is past it.
    fn run_phase(&mut self, pi: usize) -> anyhow::Result<()> {
        let phase = self.phases[pi].clone();
        if phase.end_step() <= self.state.step || self.state.step >= self.stop_at {
            return Ok(());
        }
        if pi > 0 && self.state.step == phase.start_step {
            self.evaluate_switch(pi)?;
        }
        let mut moments = Moments { optimizer: &mut self.optimizer, policy: self.opts.switch_moments };
        self.clip.set_image_size_with(phase.image_size, &mut moments)?;
        self.bar.set_prefix(format!("{} {}px", phase.name, phase.image_size));
        self.clock = Clock::start(self.opts.comm.waited_seconds());
        while self.state.step < phase.end_step().min(self.stop_at) {
            self.step(pi)?;
        }
        self.graphs.release();
        self.stop_clock(pi)
    }

    /// One step of phase `pi`: the batch, its learning rate, the step itself
    /// (forward, loss, backward, update: [`crate::train_step`], replayed
    /// from a CUDA graph where it can be, or its data-parallel form), then
    /// what the run keeps of it.
    fn step(&mut self, pi: usize) -> anyhow::Result<()> {
        let batch = self.loader.next_batch(self.phases[pi].batch_spec())?;
        let lr = self.schedule.lr(self.state.step);
        let world = self.opts.comm.world();
        if world > 1 && batch.len() * world != self.opts.step_batch() {
            // The ranks' features are gathered in equal slices.
            anyhow::bail!(
                "rank {}: only {} of this rank's {} places of batch {:?} found a usable sample among their substitutes",
                self.opts.comm.rank(),
                batch.len(),
                self.opts.step_batch() / world,
                batch.position
            );
        }
        let (clip, optimizer, dtype) = (&self.clip, &mut self.optimizer, self.opts.precision);
        let (parallel, graphs) = (self.parallel.as_mut(), &mut self.graphs);
        let (images, tokens, k) = (&batch.images, &batch.tokens, self.opts.accum_freq);
        let dropout = self.phases[pi].dropout_at(self.opts, self.state.step);
        let (loss, report) =
            parallel::step(parallel, graphs, clip, optimizer, images, tokens, dtype, lr, k, dropout.as_ref())?;
        self.say_graph_notice();
        self.count(pi, (batch.len() * world) as u64);
        // The previous step's numbers are read with this one queued: a GPU
        // goes on computing while the host waits for them. A step that is
        // logged is read now anyway, and checked before it is written.
        self.check_finite()?;
        let unchecked = Unchecked { step: self.state.step, loss, report };
        let last = self.state.step == self.phases[pi].end_step() || self.state.step == self.stop_at;
        if self.state.step.is_multiple_of(self.opts.log_every) || last {
            self.verify(&unchecked)?;
            self.log(pi, &unchecked.loss, &unchecked.report, lr)?;
        } else {
            self.unchecked = Some(unchecked);
        }
        if self.due(self.opts.eval_every) || self.due(self.opts.checkpoint_every) {
            self.evaluate_and_checkpoint(pi)?;
        } else if self.due(Some(WEIGHTS_CHECK_EVERY)) {
            self.check_ranks_agree()?;
        }
        Ok(())
    }

    /// Logs what the graph steps have to say (once each: why they run plain
    /// launches).
    fn say_graph_notice(&mut self) {
        if let Some(notice) = self.graphs.take_notice()
            && self.opts.comm.is_leader()
        {
            self.bar.suspend(|| eprintln!("{notice}"));
        }
    }

    /// An error unless every rank holds the same weights, bit for bit: they
    /// take the same steps from the same start, so a difference means a
    /// rank went wrong, and training on would hide it.
    fn check_ranks_agree(&self) -> anyhow::Result<()> {
        if self.parallel.is_none() {
            return Ok(());
        }
        let checksum = reclip_dist::weights_checksum(&self.clip.params())?;
        let what = format!("the weights after step {}", self.state.step);
        Ok(reclip_dist::check_agree(&self.opts.comm, &what, checksum)?)
    }

    /// Counts a step of phase `pi` on `samples` samples.
    fn count(&mut self, pi: usize, samples: u64) {
        self.state.step += 1;
        self.state.phases[pi].steps += 1;
        self.state.phases[pi].samples += samples;
        self.clock.window_samples += samples;
        self.pflops += self.flops[pi].training_pflops(samples);
        self.bar.inc(1);
    }

    /// Writes the metrics of the step just taken (reading the loss and the
    /// gradient norm back from the device).
    fn log(&mut self, pi: usize, loss: &Var, report: &StepReport, lr: f32) -> anyhow::Result<()> {
        let phase = &self.phases[pi];
        let loss = match &self.parallel {
            Some(dp) => dp.global_loss(loss.tensor().to_scalar()?)?,
            None => loss.tensor().to_scalar()?,
        };
        self.opts.device.synchronize()?;
        let elapsed = self.clock.window.elapsed().as_secs_f64();
        let waited = self.opts.comm.waited_seconds();
        let line = StepMetrics {
            step: self.state.step,
            phase: phase.name.clone(),
            image_size: phase.image_size,
            text_len: phase.text_len,
            loss,
            lr: lr as f64,
            logit_scale: self.clip.logit_scale().value().to_scalar()?.exp(),
            logit_bias: self.clip.logit_bias().map(|b| b.value().to_scalar()).transpose()?,
            grad_norm: report.grad_norm()?.map(f64::from),
            images_per_second: self.clock.window_samples as f64 / elapsed.max(1e-9),
            samples: self.state.samples(),
            train_pflops: self.pflops,
            comm_seconds: waited - self.clock.window_waited,
        };
        self.bar.set_message(format!("loss {loss:.4} {:.0} img/s", line.images_per_second));
        self.metrics.push(Line::Step(line))?;
        self.clock.restart_window(waited);
        Ok(())
    }

    /// Stops the run at the first step whose loss or gradient norm is not a
    /// number, before anything after it is saved: the latest checkpoint
    /// stays the last good one. Every step is checked (reading two scalars
    /// back): a logged one at once, others one step late, and the last
    /// before every checkpoint.
    fn check_finite(&mut self) -> anyhow::Result<()> {
        match self.unchecked.take() {
            Some(unchecked) => self.verify(&unchecked),
            None => Ok(()),
        }
    }

    /// An error naming the step unless its loss and gradient norm are finite.
    fn verify(&self, Unchecked { step, loss, report }: &Unchecked) -> anyhow::Result<()> {
        let loss = loss.tensor().to_scalar()?;
        let bad = match report.grad_norm()? {
            _ if !loss.is_finite() => format!("the loss is {loss}"),
            Some(n) if !n.is_finite() => format!("the gradient norm is {n} (loss {loss:.4})"),
            _ => return Ok(()),
        };
        anyhow::bail!("step {step}: {bad}; {}", state::last_good(&self.opts.out))
    }

    /// Whether something done every `k` steps is due after this step.
    fn due(&self, k: Option<u64>) -> bool {
        k.is_some_and(|k| k > 0 && self.state.step.is_multiple_of(k))
    }

    /// Evaluates and saves a checkpoint, as each is due; the time they take
    /// is not training time.
    fn evaluate_and_checkpoint(&mut self, pi: usize) -> anyhow::Result<()> {
        self.stop_clock(pi)?;
        if self.due(self.opts.eval_every) {
            let Phase { image_size, text_len, .. } = self.phases[pi];
            self.evaluate_once(image_size, text_len)?;
        }
        if self.due(self.opts.checkpoint_every) {
            self.save_checkpoint()?;
        }
        self.clock = Clock::start(self.opts.comm.waited_seconds());
        Ok(())
    }

    /// Saves where the run stands: the model, the optimizer, the step and
    /// where the loader will take the next batch from.
    fn save_checkpoint(&mut self) -> anyhow::Result<()> {
        self.check_finite()?;
        self.check_ranks_agree()?;
        self.state.loader = self.loader.position();
        let streams = self.gather_stream_states()?;
        if self.opts.comm.is_leader() {
            let keep = self.opts.keep_checkpoints;
            state::save(&self.opts.out, &self.clip, &self.optimizer, &self.state, &streams, keep)?;
        }
        Ok(())
    }

    /// Every rank's stream state, in rank order, when the data is streamed.
    fn gather_stream_states(&self) -> anyhow::Result<Vec<StreamState>> {
        let Some(mine) = self.loader.stream_state() else { return Ok(Vec::new()) };
        let all = self.opts.comm.all_gather_bytes(&mine.to_bytes())?;
        let parse =
            |(rank, bytes): (usize, &Vec<u8>)| StreamState::from_bytes(bytes, &format!("rank {rank}'s stream state"));
        Ok(all.iter().enumerate().map(parse).collect::<Result<_, _>>()?)
    }

    /// Adds the training time since the clock started to phase `pi`'s, once
    /// the device has caught up.
    fn stop_clock(&mut self, pi: usize) -> anyhow::Result<()> {
        self.opts.device.synchronize()?;
        self.state.phases[pi].wall_seconds += self.clock.phase.elapsed().as_secs_f64();
        self.state.phases[pi].comm_seconds += self.opts.comm.waited_seconds() - self.clock.phase_waited;
        Ok(())
    }

    /// Saves where the run stands (a checkpoint) and the model.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.bar.finish_and_clear();
        self.save_checkpoint()?;
        if self.opts.comm.is_leader() {
            self.clip.save(&self.opts.out.join("model.safetensors"))?;
        }
        Ok(())
    }

    /// The report of the finished run, given its final evaluation and its baseline.
    fn report(
        &self,
        zero_shot: Vec<ZeroShotResult>,
        retrieval: Vec<RetrievalResult>,
        baseline: Option<Baseline>,
    ) -> Report {
        Report::build(RunRecord {
            opts: self.opts,
            phases: &self.phases,
            flops: &self.flops,
            stats: &self.state.phases,
            metrics: &self.metrics.lines,
            zero_shot,
            retrieval,
            baseline,
            data: self.loader.report(),
            data_reader: self.loader.reader(),
            graphs: self.graphs.used(),
        })
    }
}

/// A step whose loss and gradient norm, still on the device, are yet to be
/// checked.
struct Unchecked {
    step: u64,
    loss: Var,
    report: StepReport,
}

/// How often every rank's weights are compared (besides at checkpoints).
const WEIGHTS_CHECK_EVERY: u64 = 100;

/// The clocks of a phase: its training time, which leaves out evaluations
/// and checkpoints, and the window since the last metrics line, over which
/// throughput is measured; with the communication wait at the start of each
/// ([`reclip_dist::Comm::waited_seconds`]).
struct Clock {
    window: Instant,
    window_samples: u64,
    window_waited: f64,
    phase: Instant,
    phase_waited: f64,
}

impl Clock {
    fn start(waited: f64) -> Self {
        let now = Instant::now();
        Clock { window: now, window_samples: 0, window_waited: waited, phase: now, phase_waited: waited }
    }

    fn restart_window(&mut self, waited: f64) {
        self.window = Instant::now();
        self.window_samples = 0;
        self.window_waited = waited;
    }
}

/// Adam's moments of a parameter the model resizes (the positional embedding,
/// when the image size changes): the old grid's moments describe other
/// positions, so they restart or are resized, as `--switch-moments` says.
struct Moments<'a> {
    optimizer: &'a mut AdamW,
    policy: SwitchMoments,
}

impl FollowsParams for Moments<'_> {
    fn resized(
        &mut self,
        param: &Param,
        resize: &dyn Fn(&Tensor) -> reclip_core::Result<Tensor>,
    ) -> reclip_core::Result<()> {
        match self.policy {
            SwitchMoments::Restart => self.optimizer.reset_moments(param),
            SwitchMoments::Resize => self.optimizer.resize_moments(param, resize),
        }
    }
}
