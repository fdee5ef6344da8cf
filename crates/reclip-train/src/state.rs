//! Checkpoints of a training run. Each save writes a folder
//! `<out>/checkpoints/step-NNNNNNN/` holding `model.safetensors` (the model
//! under open_clip's names with its config in the metadata — loadable by
//! open_clip and by `reclip eval`) and `train.safetensors` (the optimizer's
//! moments and, in the metadata, where the run stands). Only when both are
//! complete does `<out>/checkpoints/latest` (written atomically) point to the
//! new folder; then older folders are removed. A run killed at any moment
//! thus leaves a complete checkpoint to resume from.

use crate::AdamW;
use reclip_core::{Device, Tensor};
use reclip_data::Position;
use reclip_model::checkpoint;
use reclip_model::clip::Clip;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const STATE_KEY: &str = "reclip.train_state";

/// Time and samples spent in each phase so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PhaseStats {
    pub steps: u64,
    pub samples: u64,
    pub wall_seconds: f64,
}

/// Where a run stands: what a checkpoint records besides the weights and
/// the optimizer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Steps completed.
    pub step: u64,
    /// The loader's position: where the next batch comes from.
    #[serde(flatten, with = "LoaderPosition")]
    pub loader: Position,
    pub phases: Vec<PhaseStats>,
}

/// [`Position`] under the names checkpoints store it by.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Position")]
struct LoaderPosition {
    #[serde(rename = "loader_epoch")]
    epoch: usize,
    #[serde(rename = "loader_batch")]
    batch: usize,
}

impl TrainState {
    /// The start of a run of `phases` phases.
    pub fn new(phases: usize) -> Self {
        TrainState { step: 0, loader: Position::default(), phases: vec![PhaseStats::default(); phases] }
    }

    /// Training time so far: the phases' time up to their clocks' last reading.
    pub fn training_seconds(&self) -> f64 {
        self.phases.iter().map(|p| p.wall_seconds).sum()
    }

    /// Samples trained on so far.
    pub fn samples(&self) -> u64 {
        self.phases.iter().map(|p| p.samples).sum()
    }
}

fn checkpoints(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

fn latest(out: &Path) -> anyhow::Result<PathBuf> {
    let pointer = checkpoints(out).join("latest");
    let name = std::fs::read_to_string(&pointer)
        .map_err(|e| anyhow::anyhow!("{}: no checkpoint to resume from ({e})", pointer.display()))?;
    Ok(checkpoints(out).join(name.trim()))
}

/// Saves a checkpoint and makes it the latest.
pub fn save(out: &Path, clip: &Clip, optimizer: &AdamW, state: &TrainState) -> anyhow::Result<PathBuf> {
    let name = format!("step-{:07}", state.step);
    let dir = checkpoints(out).join(&name);
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (param, m, v) in optimizer.moments() {
        tensors.push((format!("adamw.m.{param}"), m.clone()));
        tensors.push((format!("adamw.v.{param}"), v.clone()));
    }
    let meta = HashMap::from([
        (STATE_KEY.to_string(), serde_json::to_string(state)?),
        ("reclip.optimizer_steps".to_string(), optimizer.steps().to_string()),
    ]);
    checkpoint::save(&dir.join("train.safetensors"), &tensors, meta)?;
    clip.save(&dir.join("model.safetensors"))?;
    reclip_core::fs::write_atomic(&checkpoints(out).join("latest"), name.as_bytes())?;
    for entry in std::fs::read_dir(checkpoints(out))? {
        let path = entry?.path();
        let stale = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("step-") && n != name);
        if stale && path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(dir.join("model.safetensors"))
}

/// A run's checkpoint, loaded.
pub struct Checkpoint {
    pub clip: Clip,
    /// The optimizer's first and second moments, by parameter name.
    pub moments: HashMap<String, (Tensor, Tensor)>,
    pub optimizer_steps: u64,
    pub state: TrainState,
}

/// Loads the latest checkpoint of the run in `out`.
pub fn load(out: &Path, device: &Device) -> anyhow::Result<Checkpoint> {
    let dir = latest(out)?;
    let clip = Clip::load(&dir.join("model.safetensors"), None, device)?;
    let sp = dir.join("train.safetensors");
    let dict = checkpoint::load(&sp)?;
    let field =
        |key: &str| dict.metadata.get(key).ok_or_else(|| anyhow::anyhow!("{}: missing metadata {key}", sp.display()));
    let state: TrainState = serde_json::from_str(field(STATE_KEY)?)?;
    let optimizer_steps: u64 = field("reclip.optimizer_steps")?.parse()?;
    let mut moments: HashMap<String, (Option<Tensor>, Option<Tensor>)> = HashMap::new();
    for (name, t) in dict.tensors {
        if let Some(p) = name.strip_prefix("adamw.m.") {
            moments.entry(p.to_string()).or_default().0 = Some(t);
        } else if let Some(p) = name.strip_prefix("adamw.v.") {
            moments.entry(p.to_string()).or_default().1 = Some(t);
        }
    }
    let moments = moments.into_iter().filter_map(|(n, (m, v))| Some((n, (m?, v?)))).collect();
    Ok(Checkpoint { clip, moments, optimizer_steps, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state as checkpoints have always stored it.
    const STORED: &str = r#"{"step":37,"loader_epoch":2,"loader_batch":5,"phases":[{"steps":30,"samples":240,"wall_seconds":0.25},{"steps":7,"samples":56,"wall_seconds":0.125}]}"#;

    #[test]
    fn the_stored_state_reads_and_writes_the_same_bytes() {
        let state: TrainState = serde_json::from_str(STORED).unwrap();
        assert_eq!(state.loader, Position { epoch: 2, batch: 5 });
        assert_eq!((state.step, state.samples(), state.training_seconds()), (37, 296, 0.375));
        assert_eq!(serde_json::to_string(&state).unwrap(), STORED);
    }
}
