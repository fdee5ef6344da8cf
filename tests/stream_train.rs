//! End to end: training on streamed WebDataset shards counted by
//! `reclip index-shards` — a run killed mid-epoch, resumed, stopped in the
//! next epoch and resumed again makes the same batches as one that never
//! stopped; streaming options are checked before anything is written.

mod common;

use reclip::core::Tensor;
use reclip::model::checkpoint;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn reclip(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reclip")).args(args).output().unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `args` with `option`'s value replaced by `value`.
fn set(args: &[String], option: &str, value: &str) -> Vec<String> {
    let mut args = args.to_vec();
    let at = args.iter().position(|a| a == option).unwrap();
    args[at + 1] = value.to_string();
    args
}

fn succeeds(args: &[String]) -> Output {
    let out = reclip(args);
    assert!(out.status.success(), "{args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The one-line error of a refused command (exit 2).
fn refused(args: &[String]) -> String {
    let out = reclip(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    err
}

/// 6 shards of 20: epochs of 15 batches of 8; 40 steps cross two epoch ends
/// and the switch from 8 to 16 px at step 30.
fn train_args(model: &Path, data: &str, out: &Path) -> Vec<String> {
    let mut args = strings(&[
        "train",
        "--data-reader",
        "stream",
        "--shuffle-buffer",
        "16",
        "--shard-readers",
        "2",
        "--steps",
        "40",
        "--batch-size",
        "8",
        "--text-len",
        "8",
        "--low-res",
        "8",
        "--high-res",
        "16",
        "--finetune-fraction",
        "0.25",
        "--log-every",
        "1",
        "--eval-every",
        "0",
        "--checkpoint-every",
        "5",
        "--workers",
        "1",
        "--probe-steps",
        "1",
        "--quiet",
    ]);
    args.extend(["--model", model.to_str().unwrap(), "--data", data, "--out", out.to_str().unwrap()].map(String::from));
    args
}

fn losses(out: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

fn weights(out: &Path) -> Vec<(String, Vec<u32>)> {
    let tensors = checkpoint::load(&out.join("model.safetensors")).unwrap().tensors;
    let bits = |t: &Tensor| t.to_vec_f32().unwrap().iter().map(|v| v.to_bits()).collect();
    tensors.iter().map(|(n, t)| (n.clone(), bits(t))).collect()
}

struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    model: PathBuf,
    data: String,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let model = root.join("tiny.json");
    std::fs::write(&model, common::TINY).unwrap();
    let data = common::write_shards(&root.join("shards"), 6, 20);
    Scratch { _dir: dir, root, model, data }
}

/// Starts `args` (a run into `out`), kills it once its first checkpoint is
/// complete and returns that checkpoint's step.
fn kill_after_a_checkpoint(args: &[String], out: &Path) -> u64 {
    let latest = || {
        let name = std::fs::read_to_string(out.join("checkpoints/latest")).ok()?;
        name.trim().strip_prefix("step-")?.parse::<u64>().ok()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_reclip")).args(args).stdout(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while latest().is_none() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        assert!(start.elapsed() < Duration::from_secs(600), "no checkpoint after 10 minutes");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    latest().unwrap()
}

#[test]
fn a_streamed_run_killed_mid_epoch_resumes_with_the_same_batches() {
    let s = scratch();
    let indexed = succeeds(&strings(&["index-shards", "--data", &s.data]));
    assert!(String::from_utf8_lossy(&indexed.stdout).contains("120"), "{indexed:?}");
    let (a, b) = (s.root.join("a"), s.root.join("b"));
    succeeds(&train_args(&s.model, &s.data, &a));
    // Killed once a checkpoint is complete (every 5 steps, within the first
    // epoch of 15), resumed and stopped in the second epoch, resumed again.
    let killed_at = kill_after_a_checkpoint(&train_args(&s.model, &s.data, &b), &b);
    assert!(killed_at < 15, "killed after step {killed_at}, not in the first epoch; make the run longer");
    let streams = b.join(format!("checkpoints/step-{killed_at:07}/data-streams.json"));
    assert!(streams.is_file(), "{} holds the ranks' stream states", streams.display());
    let resume = |n: &str| strings(&["train", "--resume", b.to_str().unwrap(), "--quiet", "--stop-after", n]);
    succeeds(&resume(&(22 - killed_at).to_string()));
    succeeds(&resume("100"));

    assert_eq!(losses(&a).len(), 40);
    assert_eq!(losses(&a), losses(&b), "the loss curves differ");
    assert!(weights(&a) == weights(&b), "the final weights differ");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(b.join("report.json")).unwrap()).unwrap();
    let reader = report["data_reader"].as_str().unwrap();
    assert!(reader.starts_with("streamed: 6 shards") && reader.contains("120 samples per epoch"), "{reader}");
}

#[test]
fn streaming_options_are_checked_before_anything_is_written() {
    let s = scratch();
    let out = s.root.join("run");
    let base = train_args(&s.model, &s.data, &out);
    let with = |extra: &[&str]| [base.clone(), strings(extra)].concat();
    let err = refused(&set(&base, "--shuffle-buffer", "0"));
    assert!(err.contains("--shuffle-buffer 0"), "{err}");
    let err = refused(&set(&with(&["--samples-per-epoch", "100"]), "--data-reader", "random"));
    assert!(err.contains("--data-reader random"), "{err}");
    let err = refused(&set(&with(&["--resampled"]), "--data", "builtin"));
    assert!(err.contains("--data-reader: applies to WebDataset tar shards"), "{err}");
    assert!(!out.exists(), "a refused run wrote its --out");
    // Found when the shards are opened.
    let err = refused(&with(&[]));
    assert!(err.contains("reclip index-shards") && err.contains("--samples-per-epoch"), "{err}");
    let err = refused(&with(&["--samples-per-epoch", "4", "--overwrite"]));
    assert!(err.contains("batch size") && err.contains("exceeds the 4 samples"), "{err}");
}
