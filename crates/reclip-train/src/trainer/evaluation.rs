//! The trainer's evaluations: the first zero-shot set every so many steps
//! and on both sides of a switch of image size, every set at the end.

use super::Trainer;
use crate::eval::{Evaluator, RetrievalResult, ZeroShotResult};
use crate::metrics::{EvalMetrics, Line};
use reclip_data::DataReport;

type Results = (Vec<ZeroShotResult>, Vec<RetrievalResult>);

impl Trainer<'_> {
    /// Before the first step of phase `pi`: the previous phase's model, at
    /// its own size and at the new one.
    pub(super) fn evaluate_switch(&mut self, pi: usize) -> anyhow::Result<()> {
        for p in [pi - 1, pi] {
            let (size, text_len) = (self.phases[p].image_size, self.phases[p].text_len);
            self.evaluate_once(size, text_len)?;
        }
        Ok(())
    }

    /// Evaluates the first zero-shot set at `image_size` into the metrics,
    /// unless they hold that evaluation of this step already (a resumed run).
    pub(super) fn evaluate_once(&mut self, image_size: usize, text_len: usize) -> anyhow::Result<()> {
        let step = self.state.step;
        let done = self
            .metrics
            .lines
            .iter()
            .any(|l| matches!(l, Line::Eval(e) if e.step == step && e.image_size == image_size));
        if done || self.opts.zero_shot.is_empty() {
            return Ok(());
        }
        let wall_seconds = self.state.training_seconds();
        let (zero_shot, retrieval) = self.evaluate(image_size, text_len, false)?;
        let line = EvalMetrics { step, train_pflops: self.pflops, wall_seconds, image_size, zero_shot, retrieval };
        self.metrics.push(Line::Eval(line))
    }

    /// Every set, at the last phase's shape, into the metrics.
    pub(super) fn evaluate_final(&mut self) -> anyhow::Result<Results> {
        let last = self.phases.last().expect("a plan has phases");
        let (image_size, text_len) = (last.image_size, last.text_len);
        let (zero_shot, retrieval) = self.evaluate(image_size, text_len, true)?;
        self.metrics.push(Line::Eval(EvalMetrics {
            step: self.state.step,
            train_pflops: self.pflops,
            wall_seconds: self.state.training_seconds(),
            image_size,
            zero_shot: zero_shot.clone(),
            retrieval: retrieval.clone(),
        }))?;
        Ok((zero_shot, retrieval))
    }

    /// The first zero-shot set, or with `all` every zero-shot and retrieval
    /// set; on rank 0 only (the others return no results and go on to wait
    /// for it at the next step's first collective).
    fn evaluate(&self, image_size: usize, text_len: usize, all: bool) -> anyhow::Result<Results> {
        if !self.opts.comm.is_leader() {
            return Ok((Vec::new(), Vec::new()));
        }
        let ev = Evaluator {
            clip: &self.clip,
            encoder: self.encoder.clone(),
            dtype: self.opts.precision,
            batch_size: self.opts.eval_batch_size,
            image_size,
            text_len,
            workers: self.opts.workers,
        };
        let opts = self.opts;
        let sets = if all { &opts.zero_shot[..] } else { &opts.zero_shot[..opts.zero_shot.len().min(1)] };
        // Problems with an evaluation set recur at every evaluation; the final
        // one, over every set, says them once.
        let said = |data: DataReport| {
            if all && !data.is_clean() {
                eprintln!("{data}");
            }
        };
        let zero_shot = sets
            .iter()
            .map(|s| {
                let (result, data) = ev.zero_shot(s)?;
                said(data);
                Ok(result)
            })
            .collect::<anyhow::Result<_>>()?;
        let retrieval = if all {
            opts.retrieval
                .iter()
                .map(|r| {
                    let (result, data) = ev.retrieval(&r.name, r.data.clone())?;
                    said(data);
                    Ok(result)
                })
                .collect::<anyhow::Result<_>>()?
        } else {
            Vec::new()
        };
        Ok((zero_shot, retrieval))
    }
}
