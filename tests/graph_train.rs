//! A training run whose steps are replayed from graphs, on the emulator
//! (the CLI opens no emulator, so the trainer is called as the CLI calls
//! it): the same loss curve and final weights as plain launches, bit for
//! bit, across a switch of image size, and the same again when it is
//! stopped after the switch and resumed; the report says whether graphs
//! were used.

mod common;

use reclip::core::{DType, Device, Tensor};
use reclip::data::SyntheticConfig;
use reclip::dist::Comm;
use reclip::model::{ModelConfig, checkpoint};
use reclip::train::phases::{Schedule, parse_stages};
use reclip::train::trainer::{self, DataSource, Outcome, RunLength, SwitchMoments, TrainOptions};
use reclip::train::{AdamWConfig, CudaGraphs};
use reclip_emu::Emulator;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// 8 steps: 4 at 8 px, 4 at 16 px; a checkpoint every 3.
fn options(out: &Path, device: &Device, cuda_graphs: CudaGraphs) -> TrainOptions {
    TrainOptions {
        model_name: "tiny".into(),
        model: ModelConfig::from_json_str(common::TINY).unwrap(),
        data: DataSource::Builtin(SyntheticConfig::default()),
        batch_size: 4,
        length: RunLength::Steps(8),
        lr: 2e-3,
        warmup: 2,
        finetune_lr: 2e-3,
        finetune_warmup: None,
        adam: AdamWConfig::default(),
        seed: 3,
        device: device.clone(),
        precision: DType::F32,
        out: out.to_path_buf(),
        zero_shot: Vec::new(),
        retrieval: Vec::new(),
        schedule: Schedule::Stages(parse_stages("8:0.5,16:0.5", 8).unwrap()),
        switch_moments: SwitchMoments::Restart,
        log_every: 1,
        eval_every: None,
        checkpoint_every: Some(3),
        keep_checkpoints: 2,
        resume: false,
        workers: 1,
        eval_batch_size: 8,
        probe_steps: 1,
        progress: false,
        stop_after: None,
        comm: Comm::single(),
        bucket_mib: 25,
        cuda_graphs,
        accum_freq: 1,
        patch_dropout: Vec::new(),
    }
}

/// step → loss bits, from a run's metrics.jsonl.
fn losses(out: &Path) -> BTreeMap<u64, u64> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap().to_bits()))
        .collect()
}

fn weights(out: &Path) -> Vec<(String, Vec<u32>)> {
    let dict = checkpoint::load(&out.join("model.safetensors")).unwrap();
    dict.tensors
        .into_iter()
        .map(|(n, t): (String, Tensor)| (n, t.to_vec_f32().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

fn report(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn finished(opts: &TrainOptions) {
    assert!(matches!(trainer::train(opts).unwrap(), Outcome::Finished(_)));
}

#[test]
fn a_run_with_graphs_equals_one_without_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let device = Emulator::device(21);
    let (plain, graphs, resumed) = (dir.path().join("plain"), dir.path().join("graphs"), dir.path().join("resumed"));
    finished(&options(&plain, &device, CudaGraphs::Off));
    finished(&options(&graphs, &device, CudaGraphs::Auto));

    // Stopped (with a checkpoint) after the switch's first step: the
    // resumed invocation starts with a plain step and records its own.
    let stopped = TrainOptions { stop_after: Some(5), ..options(&resumed, &device, CudaGraphs::Auto) };
    assert!(matches!(trainer::train(&stopped).unwrap(), Outcome::Stopped { step: 5, total: 8 }));
    finished(&TrainOptions { resume: true, ..options(&resumed, &device, CudaGraphs::Auto) });

    let curve = losses(&plain);
    assert_eq!(curve.len(), 8);
    for (run, how) in [(&graphs, "graphs"), (&resumed, "graphs, stopped and resumed")] {
        assert_eq!(losses(run), curve, "the loss curve differs ({how})");
        assert!(weights(run) == weights(&plain), "the final weights differ ({how})");
    }

    let used = |out: &Path| report(out)["cuda_graphs"].clone();
    assert_eq!(used(&plain)["used"], false);
    assert_eq!(used(&plain)["plain_because"], "--cuda-graphs off");
    // All but each phase's first step; in the resumed invocation, all but
    // its first.
    assert_eq!(used(&graphs)["replayed_steps"], 6, "{}", used(&graphs));
    assert_eq!(used(&resumed)["replayed_steps"], 2, "{}", used(&resumed));
    assert_eq!(used(&resumed)["plain_because"], Value::Null);
}
