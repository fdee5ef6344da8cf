//! How a run begins: from its first step, or resumed from its latest
//! checkpoint. Both set up the data and the plan alike.

use super::{Clock, Trainer};
use crate::metrics::MetricsLog;
use crate::options::{TrainOptions, plan_run};
use crate::phases::Phase;
use crate::schedule::RunSchedule;
use crate::state::{self, TrainState};
use crate::{AdamW, DataParallel, GraphStep};
use indicatif::{ProgressBar, ProgressStyle};
use reclip_data::{Loader, StreamState};
use reclip_model::clip::Clip;
use reclip_tokenizer::ClipTokenizer;
use std::sync::Arc;

/// What a new and a resumed run set up alike: the data and the plan.
struct Setup {
    encoder: Arc<ClipTokenizer>,
    loader: Loader,
    phases: Vec<Phase>,
    total_steps: u64,
    schedule: RunSchedule,
}

impl Setup {
    fn new(opts: &TrainOptions) -> anyhow::Result<Self> {
        let encoder = Arc::new(ClipTokenizer::new()?);
        let loader = opts.loader(encoder.clone(), opts.seed)?;
        let (phases, total_steps) = plan_run(opts, loader.batches_per_epoch())?;
        let schedule = RunSchedule::new(&phases, opts.lr, opts.warmup, opts.finetune_lr, opts.finetune_warmup);
        Ok(Setup { encoder, loader, phases, total_steps, schedule })
    }
}

impl<'a> Trainer<'a> {
    /// A run from its first step.
    pub(super) fn new(opts: &'a TrainOptions) -> anyhow::Result<Self> {
        let setup = Setup::new(opts)?;
        let (clip, optimizer) = opts.new_model(opts.seed, setup.phases[0].image_size)?;
        let state = TrainState::new(setup.phases.len());
        Self::start(opts, setup, clip, optimizer, state)
    }

    /// The run saved in `opts.out`, from its latest checkpoint.
    pub(super) fn resume(opts: &'a TrainOptions) -> anyhow::Result<Self> {
        let mut setup = Setup::new(opts)?;
        let state::Checkpoint { clip, moments, optimizer_steps, state, streams } =
            state::load(&opts.out, &opts.device)?;
        let mut optimizer = AdamW::new(&clip.params(), opts.adam)?;
        optimizer.restore(optimizer_steps, |name| moments.get(name).cloned())?;
        let stream = own_stream_state(opts, &setup.loader, streams)?;
        setup.loader.seek(state.loader, stream)?;
        if state.phases.len() != setup.phases.len() {
            anyhow::bail!("{}: the checkpoint's run has another schedule", opts.out.display());
        }
        Self::start(opts, setup, clip, optimizer, state)
    }

    /// The run as its first step or its checkpoint leaves it, with each
    /// phase's FLOPs per sample counted once for the run and its report.
    fn start(
        opts: &'a TrainOptions,
        setup: Setup,
        clip: Clip,
        optimizer: AdamW,
        state: TrainState,
    ) -> anyhow::Result<Self> {
        let Setup { encoder, loader, phases, total_steps, schedule } = setup;
        let flops: Vec<_> = phases.iter().map(|p| opts.flops(p)).collect::<Result<_, _>>()?;
        let pflops = state.phases.iter().zip(&flops).map(|(s, f)| f.training_pflops(s.samples)).sum();
        let metrics = match opts.comm.is_leader() {
            true => MetricsLog::open(&opts.out, opts.resume.then_some(state.step))?,
            false => MetricsLog::unwritten(),
        };
        let parallel = DataParallel::of_run(opts, &clip);
        let graphs = GraphStep::for_run(opts);
        let bar = progress_bar(opts.progress && opts.comm.is_leader(), total_steps, state.step);
        let stop_at = opts.stop_after.map(|n| (state.step + n).min(total_steps)).unwrap_or(total_steps);
        let clock = Clock::start(opts.comm.waited_seconds());
        let mut trainer = Trainer {
            opts,
            encoder,
            loader,
            phases,
            flops,
            schedule,
            total_steps,
            stop_at,
            clip,
            optimizer,
            parallel,
            graphs,
            state,
            metrics,
            unchecked: None,
            pflops,
            bar,
            clock,
        };
        trainer.say_graph_notice();
        // Every rank starts from the same weights: the same seed, or the same checkpoint.
        trainer.check_ranks_agree()?;
        Ok(trainer)
    }
}

/// This rank's state in the checkpoint's `streams`, checked against how
/// the loader reads the data.
fn own_stream_state(
    opts: &TrainOptions,
    loader: &Loader,
    mut streams: Vec<StreamState>,
) -> anyhow::Result<Option<StreamState>> {
    let out = opts.out.display();
    let world = opts.comm.world();
    match (loader.stream_state().is_some(), streams.len()) {
        (false, 0) => Ok(None),
        (false, _) => anyhow::bail!("{out}: the checkpoint streamed its shards; this run reads them by index"),
        (true, 0) => anyhow::bail!("{out}: the checkpoint read its data by index; this run streams it"),
        (true, n) if n != world => anyhow::bail!(
            "{out}: the checkpoint streamed its shards over {n} rank(s), this job has {world}: streamed shards \
             resume only on as many ranks, since each reads its own"
        ),
        (true, _) => Ok(Some(streams.swap_remove(opts.comm.rank()))),
    }
}

/// The bar over the run's steps, at `step`; hidden unless `visible`.
fn progress_bar(visible: bool, total_steps: u64, step: u64) -> ProgressBar {
    let bar = if visible { ProgressBar::new(total_steps) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_position(step);
    bar
}
