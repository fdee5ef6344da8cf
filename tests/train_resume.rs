//! End to end: a tiny model trained by the `reclip` binary, killed after a
//! checkpoint, resumed, and evaluated — the resumed run's loss curve and final
//! weights equal those of a run that was never interrupted.

use reclip::core::Tensor;
use reclip::model::checkpoint;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TINY: &str = r#"{
  "embed_dim": 16,
  "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 32, "mlp_ratio": 2.0},
  "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1, "mlp_ratio": 2.0}
}"#;

const STEPS: u64 = 60;

fn reclip() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reclip"))
}

fn train_args(model: &Path, out: &Path) -> Vec<String> {
    let args = [
        "train",
        "--model",
        "",
        "--steps",
        "60",
        "--batch-size",
        "8",
        "--low-res",
        "8",
        "--high-res",
        "16",
        "--text-len",
        "8",
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
        "--out",
        "",
    ];
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v[2] = model.display().to_string();
    let n = v.len();
    v[n - 1] = out.display().to_string();
    v
}

/// step → loss, from a run's metrics.jsonl.
fn losses(out: &Path) -> BTreeMap<u64, f64> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

fn weights(path: &Path) -> Vec<(String, Vec<u32>)> {
    checkpoint::load(path)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(n, t): (String, Tensor)| (n, t.to_vec_f32().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

fn latest_step(out: &Path) -> Option<u64> {
    let name = std::fs::read_to_string(out.join("checkpoints/latest")).ok()?;
    name.trim().strip_prefix("step-")?.parse().ok()
}

#[test]
fn a_killed_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.json");
    std::fs::write(&model, TINY).unwrap();
    let (a, b): (PathBuf, PathBuf) = (dir.path().join("a"), dir.path().join("b"));

    let status = reclip().args(train_args(&model, &a)).status().unwrap();
    assert!(status.success(), "the uninterrupted run failed");

    // Start the same run, kill it once its first checkpoint is complete.
    let mut child = reclip().args(train_args(&model, &b)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while latest_step(&b).is_none() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        assert!(start.elapsed() < Duration::from_secs(600), "no checkpoint after 10 minutes");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = latest_step(&b).unwrap();
    assert!(killed_at < STEPS, "the run finished before it was killed; make it longer");

    let status = reclip().args(["train", "--resume", b.to_str().unwrap(), "--quiet"]).status().unwrap();
    assert!(status.success(), "the resumed run failed");

    let (la, lb) = (losses(&a), losses(&b));
    assert_eq!(la.len() as u64, STEPS);
    assert_eq!(la, lb, "the loss curves differ (killed after step {killed_at})");
    assert!(weights(&a.join("model.safetensors")) == weights(&b.join("model.safetensors")), "final weights differ");

    // The resumed run's model evaluates, and as the uninterrupted one does.
    let eval = |out: &Path| {
        let o = reclip()
            .args([
                "eval",
                "--checkpoint",
                out.join("model.safetensors").to_str().unwrap(),
                "--json",
                "--device",
                "cpu",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "eval failed: {}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["zero_shot"].clone()
    };
    assert_eq!(eval(&a), eval(&b));
}
