//! Metrics as JSON lines (`<out>/metrics.jsonl`): one line per logged step
//! and one per evaluation. On resume the lines after the checkpoint's step are
//! dropped, so that the file reads as one uninterrupted run.

use crate::eval::{RetrievalResult, ZeroShotResult};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepMetrics {
    pub step: u64,
    pub phase: String,
    pub image_size: usize,
    pub text_len: usize,
    pub loss: f64,
    pub lr: f64,
    pub logit_scale: f64,
    /// SigLIP's logit bias, for a model with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<f64>,
    pub grad_norm: Option<f64>,
    pub images_per_second: f64,
    pub samples: u64,
    /// Training FLOPs spent up to and including this step.
    pub train_pflops: f64,
    /// Seconds rank 0 waited on collectives since the previous line (0 in
    /// one process, and in metrics written before it was recorded).
    #[serde(default)]
    pub comm_seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub step: u64,
    pub train_pflops: f64,
    /// Training wall time up to this evaluation (evaluations and checkpoints
    /// excluded). Metrics written before it was recorded read as 0.
    #[serde(default)]
    pub wall_seconds: f64,
    pub image_size: usize,
    pub zero_shot: Vec<ZeroShotResult>,
    pub retrieval: Vec<RetrievalResult>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Line {
    Step(StepMetrics),
    Eval(EvalMetrics),
}

impl Line {
    pub fn step(&self) -> u64 {
        match self {
            Line::Step(s) => s.step,
            Line::Eval(e) => e.step,
        }
    }
}

pub struct MetricsLog {
    /// None for a log kept in memory only.
    path: Option<PathBuf>,
    pub lines: Vec<Line>,
}

impl MetricsLog {
    /// A log that writes nothing: the other ranks' (rank 0 writes the run's).
    pub fn unwritten() -> Self {
        MetricsLog { path: None, lines: Vec::new() }
    }

    /// A new log, or the existing one cut after `resume_step` (the lines of
    /// steps the resumed run repeats are dropped).
    pub fn open(out: &Path, resume_step: Option<u64>) -> anyhow::Result<Self> {
        let path = out.join("metrics.jsonl");
        let mut lines = Vec::new();
        if let Some(step) = resume_step
            && path.exists()
        {
            let text = std::fs::read_to_string(&path)?;
            let count = text.lines().count();
            for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let line: Line = match serde_json::from_str(l) {
                    Ok(line) => line,
                    // A run killed while writing leaves a partial last line.
                    Err(_) if i + 1 == count && !text.ends_with('\n') => break,
                    Err(e) => anyhow::bail!("{}, line {}: {e}", path.display(), i + 1),
                };
                if line.step() <= step {
                    lines.push(line);
                }
            }
        }
        let mut text = String::new();
        for l in &lines {
            text.push_str(&serde_json::to_string(l)?);
            text.push('\n');
        }
        reclip_core::fs::write_atomic(&path, text.as_bytes())?;
        Ok(MetricsLog { path: Some(path), lines })
    }

    pub fn push(&mut self, line: Line) -> anyhow::Result<()> {
        if let Some(path) = &self.path {
            let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
            writeln!(f, "{}", serde_json::to_string(&line)?)?;
        }
        self.lines.push(line);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_lines_without_wall_time_still_parse() {
        let old = r#"{"step":20,"train_pflops":0.5,"image_size":32,"zero_shot":[],"retrieval":[]}"#;
        match serde_json::from_str::<Line>(old).unwrap() {
            Line::Eval(e) => assert_eq!((e.step, e.wall_seconds), (20, 0.0)),
            Line::Step(_) => panic!("an evaluation line read as a step line"),
        }
    }
}
