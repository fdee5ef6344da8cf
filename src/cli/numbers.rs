//! The numeric options of `train` and `compare` (and the batch and text
//! length of the other commands), checked before any work: each must be
//! finite and in its range. (Those that must agree with the
//! model, the resolutions and text lengths, are checked with the schedule.)

use super::train::TrainArgs;
use anyhow::bail;

/// The most data-loading threads a run starts: more only costs memory and
/// start-up time (decoding saturates the cores long before).
pub const MAX_WORKERS: usize = 256;

/// A contrastive loss compares each pair with the others in its batch.
const MIN_BATCH: usize = 2;

/// The most timed steps of the probe that prices the baseline: a handful
/// gives a steady median; more only delays the report.
pub const MAX_PROBE_STEPS: usize = 1000;
/// The most micro-batches one step takes: open_clip's large-batch runs use
/// a few; each one's features are kept for the step.
pub const MAX_ACCUM_FREQ: usize = 1024;

/// An error naming `option` unless `v` is finite and positive.
fn positive(option: &str, v: f32) -> anyhow::Result<()> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{option} {v}: expected a positive number");
    }
    Ok(())
}

/// An error naming `option` unless `v` is finite and not negative.
fn non_negative(option: &str, v: f32) -> anyhow::Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        bail!("{option} {v}: expected a number ≥ 0");
    }
    Ok(())
}

/// An error unless `--batch-size` gives the contrastive loss pairs to compare.
pub fn contrastive_batch(batch_size: usize) -> anyhow::Result<()> {
    if batch_size < MIN_BATCH {
        bail!("--batch-size {batch_size}: a contrastive loss needs at least {MIN_BATCH} image–caption pairs per batch");
    }
    Ok(())
}

/// The text length `--text-len` gives (the model's context length when
/// not given); an error unless it is 1 to that.
pub fn text_len(given: Option<usize>, context_length: usize) -> anyhow::Result<usize> {
    let len = given.unwrap_or(context_length);
    if !(1..=context_length).contains(&len) {
        bail!("--text-len {len}: expected 1 to the model's context length, {context_length} tokens");
    }
    Ok(len)
}

pub fn check(args: &TrainArgs) -> anyhow::Result<()> {
    positive("--lr", args.lr)?;
    if let Some(lr) = args.finetune_lr {
        positive("--finetune-lr", lr)?;
    }
    non_negative("--wd", args.wd)?;
    non_negative("--grad-clip", args.grad_clip)?;
    if !(0.0..=1.0).contains(&args.finetune_fraction) {
        bail!("--finetune-fraction {}: expected a fraction of the steps, from 0 to 1", args.finetune_fraction);
    }
    contrastive_batch(args.batch_size)?;
    for (option, value) in [("--steps", args.steps), ("--epochs", args.epochs)] {
        if value == Some(0) {
            bail!("{option} 0: a run needs at least one step");
        }
    }
    if !(1..=MAX_PROBE_STEPS).contains(&args.probe_steps) {
        bail!("--probe-steps {}: expected 1 to {MAX_PROBE_STEPS} timed steps", args.probe_steps);
    }
    if !(1..=MAX_ACCUM_FREQ).contains(&args.accum_freq) {
        bail!("--accum-freq {}: expected 1 to {MAX_ACCUM_FREQ} micro-batches a step", args.accum_freq);
    }
    if args.log_every == 0 {
        bail!("--log-every 0: expected a number of steps ≥ 1");
    }
    if args.keep_checkpoints == 0 {
        bail!("--keep-checkpoints 0: a run keeps at least its latest checkpoint");
    }
    if let Some(w) = args.workers
        && !(1..=MAX_WORKERS).contains(&w)
    {
        bail!("--workers {w}: expected 1 to {MAX_WORKERS} data-loading threads");
    }
    Ok(())
}
