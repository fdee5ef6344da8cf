//! The baseline a run is measured against — every step at the run's final
//! shape — priced: its FLOPs counted, its throughput measured by a short
//! timed probe on a scratch model, since training it in full is what the
//! run set out to avoid.

use crate::options::TrainOptions;
use crate::parallel;
use crate::phases::{Phase, Schedule, plan};
use crate::{DataParallel, GraphStep};
use reclip_model::FlopsReport;
use reclip_tokenizer::ClipTokenizer;
use std::sync::Arc;
use std::time::Instant;

/// The baseline's shape and what it costs.
pub(crate) struct Baseline {
    /// Its one phase.
    pub phase: Phase,
    /// FLOPs per sample.
    pub flops: FlopsReport,
    /// Training throughput, as the probe measured it.
    pub images_per_second: f64,
    /// The probe's timed steps.
    pub probe_steps: usize,
}

/// The baseline of a run of `total_steps`; `None` when the run is the
/// baseline itself.
pub(crate) fn price(
    opts: &TrainOptions,
    encoder: Arc<ClipTokenizer>,
    total_steps: u64,
) -> anyhow::Result<Option<Baseline>> {
    if matches!(opts.schedule, Schedule::Baseline { .. }) {
        return Ok(None);
    }
    let mut phase = plan(&opts.schedule.baseline(), total_steps).map_err(anyhow::Error::msg)?.remove(0);
    phase.patch_dropout = opts.patch_dropout_of(&phase.name);
    let flops = opts.flops(&phase)?;
    let images_per_second = probe(opts, encoder, &phase, opts.probe_steps)?;
    Ok(Some(Baseline { phase, flops, images_per_second, probe_steps: opts.probe_steps }))
}

/// Measures training throughput at `phase`'s size on a scratch copy of the
/// model: `steps` timed steps after two warm-up steps.
fn probe(opts: &TrainOptions, encoder: Arc<ClipTokenizer>, phase: &Phase, steps: usize) -> anyhow::Result<f64> {
    let seed = opts.seed ^ 0x9e37;
    let (clip, mut optimizer) = opts.new_model(seed, phase.image_size)?;
    let mut loader = opts.loader(encoder, seed)?;
    // With several ranks the probe is data-parallel too, communication
    // included; in one process its steps are replayed from a graph as the
    // run's are (the warm-up records it).
    let mut parallel = DataParallel::of_run(opts, &clip);
    let mut graphs = GraphStep::for_run(opts);
    let mut timed = 0.0;
    for i in 0..steps + 2 {
        let batch = loader.next_batch(phase.batch_spec())?;
        let t0 = Instant::now();
        let (images, tokens, dtype) = (&batch.images, &batch.tokens, opts.precision);
        let (k, dropout) = (opts.accum_freq, phase.dropout_at(opts, i as u64));
        let (parallel, graphs) = (parallel.as_mut(), &mut graphs);
        parallel::step(parallel, graphs, &clip, &mut optimizer, images, tokens, dtype, opts.lr, k, dropout.as_ref())?;
        opts.device.synchronize()?;
        if i >= 2 {
            timed += t0.elapsed().as_secs_f64();
        }
    }
    Ok((steps * opts.step_batch()) as f64 / timed)
}
