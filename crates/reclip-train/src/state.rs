//! Checkpoints of a training run. Each save writes a folder
//! `<out>/checkpoints/step-NNNNNNN/` holding `model.safetensors` (the model
//! under open_clip's names with its config in the metadata — loadable by
//! open_clip and by `reclip eval`) and `train.safetensors` (the optimizer's
//! moments and, in the metadata, where the run stands). Only when both are
//! complete does `<out>/checkpoints/latest` (written atomically) point to the
//! new folder; then all but the newest few folders are removed. A run killed
//! at any moment thus leaves a complete checkpoint to resume from, and one
//! found corrupt later falls back to the one before it.

use crate::AdamW;
use reclip_core::{Device, Tensor};
use reclip_data::{Position, StreamState};
use reclip_model::clip::Clip;
use reclip_model::{checkpoint, first_non_finite};
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
    /// Of the wall time, what rank 0 spent waiting on collectives (0 in one
    /// process, and in checkpoints written before it was recorded; stored
    /// only when not 0, so one process's checkpoints read as before).
    #[serde(default, skip_serializing_if = "no_wait")]
    pub comm_seconds: f64,
}

fn no_wait(seconds: &f64) -> bool {
    *seconds == 0.0
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

const STEP_PREFIX: &str = "step-";
const STEP_DIGITS: usize = 7;

fn step_folder(step: u64) -> String {
    format!("{STEP_PREFIX}{step:0STEP_DIGITS$}")
}

/// The step a checkpoint folder's name stands for: `step-` and seven digits
/// (more once a run passes ten million steps), nothing else — no path.
fn folder_step(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(STEP_PREFIX)?;
    let plain = digits.len() >= STEP_DIGITS && digits.bytes().all(|b| b.is_ascii_digit());
    plain.then(|| digits.parse().ok()).flatten()
}

/// The run's checkpoint folders, newest first.
fn step_folders(out: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(checkpoints(out)) else { return Vec::new() };
    let mut folders: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| Some((folder_step(e.file_name().to_str()?)?, e.path())))
        .collect();
    folders.sort_by_key(|f| std::cmp::Reverse(f.0));
    folders
}

/// The folder `checkpoints/latest` names, if it names one of the run's own
/// step folders; why not otherwise.
fn latest(out: &Path) -> Result<PathBuf, String> {
    let pointer = checkpoints(out).join("latest");
    let name = std::fs::read_to_string(&pointer).map_err(|e| format!("{}: {e}", pointer.display()))?;
    let name = name.trim();
    if folder_step(name).is_none() {
        return Err(format!("{} names {name:?}, not a step folder of this run", pointer.display()));
    }
    Ok(checkpoints(out).join(name))
}

/// Where a stopped run can go on from, for its error message.
pub fn last_good(out: &Path) -> String {
    match latest(out).ok().and_then(|dir| folder_step(dir.file_name()?.to_str()?)) {
        Some(step) => format!(
            "stopped without saving it: the last good checkpoint is step {step} — resume from it with `reclip train --resume {}` (perhaps with a lower --lr)",
            out.display()
        ),
        None => "stopped before the first checkpoint: start again (perhaps with a lower --lr)".into(),
    }
}

/// The file of a checkpoint's stream states: each rank's, as JSON.
const STREAMS_FILE: &str = "data-streams.json";
/// The largest stream-state file read: ~100 bytes a buffered sample, for
/// 1000 ranks with a buffer of 10,000 (a hostile file is refused, not read).
const MAX_STREAMS_BYTES: u64 = 1 << 30;

/// Saves a checkpoint, makes it the latest, and removes all but the newest
/// `keep` (at least the new one). `streams` are the ranks' stream states,
/// in rank order, when the data is streamed.
pub fn save(
    out: &Path,
    clip: &Clip,
    optimizer: &AdamW,
    state: &TrainState,
    streams: &[StreamState],
    keep: usize,
) -> anyhow::Result<PathBuf> {
    // A step that left NaN or inf in the weights (a finite loss, but an
    // unclipped gradient that overflowed) must not become the latest.
    for param in clip.params() {
        if let Some(found) = first_non_finite(&param.value())? {
            anyhow::bail!(
                "step {}: the weights turned non-finite ({} holds {found}); {}",
                state.step,
                param.name(),
                last_good(out)
            );
        }
    }
    let name = step_folder(state.step);
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
    if !streams.is_empty() {
        reclip_core::fs::write_atomic(&dir.join(STREAMS_FILE), &serde_json::to_vec(streams)?)?;
    }
    reclip_core::fs::write_atomic(&checkpoints(out).join("latest"), name.as_bytes())?;
    // Older than the new one only: a folder of a later step (left by a run
    // that fell back to an earlier checkpoint) is overwritten when reached.
    let older = step_folders(out).into_iter().filter(|(step, _)| *step < state.step);
    for (_, path) in older.skip(keep.saturating_sub(1)) {
        std::fs::remove_dir_all(&path)?;
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
    /// Each rank's stream state, when the run streamed its data.
    pub streams: Vec<StreamState>,
}

/// Loads the latest checkpoint of the run in `out`; if it (or the pointer to
/// it) is unusable, the newest earlier one that loads, with a warning.
pub fn load(out: &Path, device: &Device) -> anyhow::Result<Checkpoint> {
    let latest = latest(out);
    let mut candidates: Vec<PathBuf> = latest.iter().cloned().collect();
    let below = latest.as_ref().ok().and_then(|dir| folder_step(dir.file_name()?.to_str()?)).unwrap_or(u64::MAX);
    candidates.extend(step_folders(out).into_iter().filter(|(step, _)| *step < below).map(|(_, path)| path));
    let mut failures: Vec<String> = latest.err().into_iter().collect();
    for dir in candidates {
        match load_folder(&dir, device) {
            Ok(checkpoint) => {
                if !failures.is_empty() {
                    eprintln!("warning: {}; resuming from {}", failures.join("; "), dir.display());
                }
                return Ok(checkpoint);
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    match failures.len() {
        0 => anyhow::bail!("{}: no checkpoint to resume from", checkpoints(out).display()),
        _ => anyhow::bail!("no usable checkpoint to resume from: {}", failures.join("; ")),
    }
}

/// Loads the checkpoint in step folder `dir`.
fn load_folder(dir: &Path, device: &Device) -> anyhow::Result<Checkpoint> {
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
    for (param, (m, v)) in &moments {
        for (kind, t) in [("m", m), ("v", v)] {
            if let Some(found) = t.as_ref().map(first_non_finite).transpose()?.flatten() {
                anyhow::bail!("{}: tensor adamw.{kind}.{param} holds {found}", sp.display());
            }
        }
    }
    let moments = moments.into_iter().filter_map(|(n, (m, v))| Some((n, (m?, v?)))).collect();
    Ok(Checkpoint { clip, moments, optimizer_steps, state, streams: load_streams(&dir.join(STREAMS_FILE))? })
}

/// The stream states at `path`; none if there is no such file.
fn load_streams(path: &Path) -> anyhow::Result<Vec<StreamState>> {
    use reclip_core::fs::OpenRefusal;
    let (mut file, _) = match reclip_core::fs::open_regular(path, MAX_STREAMS_BYTES) {
        Ok(opened) => opened,
        Err(OpenRefusal::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(OpenRefusal::Io(e)) => anyhow::bail!("{}: {e}", path.display()),
        Err(OpenRefusal::NotRegular(kind)) => anyhow::bail!("{}: not a regular file ({kind})", path.display()),
        Err(OpenRefusal::TooLarge { len }) => {
            anyhow::bail!(
                "{}: {len} bytes, more than the {MAX_STREAMS_BYTES} a stream-state file may hold",
                path.display()
            )
        }
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: not the ranks' stream states: {e}", path.display()))
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
        let ranks = STORED.replace(r#""wall_seconds":0.125"#, r#""wall_seconds":0.125,"comm_seconds":0.0625"#);
        let state: TrainState = serde_json::from_str(&ranks).unwrap();
        assert_eq!(state.phases[1].comm_seconds, 0.0625);
        assert_eq!(serde_json::to_string(&state).unwrap(), ranks);
    }
}
