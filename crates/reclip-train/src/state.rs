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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Steps completed.
    pub step: u64,
    pub loader_epoch: usize,
    pub loader_batch: usize,
    pub phases: Vec<PhaseStats>,
}

impl TrainState {
    pub fn position(&self) -> Position {
        Position { epoch: self.loader_epoch, batch: self.loader_batch }
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
    checkpoint::write_atomic(&checkpoints(out).join("latest"), name.as_bytes())?;
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
