//! Checkpoints of a training run in `<out>/`: `checkpoint.safetensors` holds
//! the model (open_clip's names, the config in the metadata — loadable by
//! open_clip and by `reclip eval`), `checkpoint.train.safetensors` the
//! optimizer's moments and, in its metadata, where the run stands. Both carry
//! the step, so a pair written by different saves (a run killed between the
//! two writes) is refused rather than resumed wrongly.

use crate::AdamW;
use reclip_core::{Device, Tensor};
use reclip_data::Position;
use reclip_model::checkpoint;
use reclip_model::clip::Clip;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const STATE_KEY: &str = "reclip.train_state";
const STEP_KEY: &str = "reclip.step";

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

pub fn model_path(out: &Path) -> PathBuf {
    out.join("checkpoint.safetensors")
}

pub fn state_path(out: &Path) -> PathBuf {
    out.join("checkpoint.train.safetensors")
}

pub fn save(out: &Path, clip: &Clip, optimizer: &AdamW, state: &TrainState) -> anyhow::Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, m, v) in optimizer.moments() {
        tensors.push((format!("adamw.m.{name}"), m.clone()));
        tensors.push((format!("adamw.v.{name}"), v.clone()));
    }
    let meta = HashMap::from([
        (STATE_KEY.to_string(), serde_json::to_string(state)?),
        (STEP_KEY.to_string(), state.step.to_string()),
        ("reclip.optimizer_steps".to_string(), optimizer.steps().to_string()),
    ]);
    // The training state first: a model file newer than its state is caught
    // by the step check either way.
    checkpoint::save(&state_path(out), &tensors, meta)?;
    clip.save_with(&model_path(out), &[(STEP_KEY, &state.step.to_string())])?;
    Ok(())
}

/// A run's checkpoint, loaded.
pub struct Checkpoint {
    pub clip: Clip,
    /// The optimizer's first and second moments, by parameter name.
    pub moments: HashMap<String, (Tensor, Tensor)>,
    pub optimizer_steps: u64,
    pub state: TrainState,
}

/// Loads the checkpoint of the run in `out`.
pub fn load(out: &Path, device: &Device) -> anyhow::Result<Checkpoint> {
    let (mp, sp) = (model_path(out), state_path(out));
    for p in [&mp, &sp] {
        if !p.exists() {
            anyhow::bail!("{}: no checkpoint to resume from", p.display());
        }
    }
    let model = checkpoint::load(&mp)?;
    let clip = Clip::from_state_dict(&model, &mp, None, device)?;
    let dict = checkpoint::load(&sp)?;
    let field =
        |key: &str| dict.metadata.get(key).ok_or_else(|| anyhow::anyhow!("{}: missing metadata {key}", sp.display()));
    let state: TrainState = serde_json::from_str(field(STATE_KEY)?)?;
    let optimizer_steps: u64 = field("reclip.optimizer_steps")?.parse()?;
    let model_step = model.metadata.get(STEP_KEY).cloned().unwrap_or_default();
    if model_step != state.step.to_string() {
        anyhow::bail!(
            "{} is from step {model_step} but {} from step {}: the run was stopped while saving; no consistent checkpoint",
            mp.display(),
            sp.display(),
            state.step
        );
    }
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
