//! Training steps recorded as graphs and replayed (`GraphStep`), on the
//! emulator: the same losses, gradient norms, weights and moments as plain
//! launches, bit for bit, in f32 and bf16 and across a switch of image size;
//! a replayed step uploads its batch and AdamW's scalars and nothing more,
//! and queues no launch from the host, with CLIP's loss or SigLIP's; a
//! step that cannot be recorded runs
//! with plain launches and says so once; `--cuda-graphs` is checked.

mod common;

use common::emulated::{Counting, SMALL, batch, batch_bytes, delta};
use reclip::autograd::Var;
use reclip::core::{DType, Device, GpuDevice, Indices, Tensor};
use reclip::model::patch_dropout::PatchDropout;
use reclip::model::{Clip, ModelConfig};
use reclip::train::trainer::Objective;
use reclip::train::{AdamW, AdamWConfig, GraphStep, StepReport, train_step};
use reclip_emu::{Emulator, Transfers};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn model(device: &Device, size: usize) -> (Clip, AdamW) {
    model_of(ModelConfig::from_json_str(SMALL).unwrap(), device, size)
}

fn model_of(config: ModelConfig, device: &Device, size: usize) -> (Clip, AdamW) {
    let mut clip = Clip::new(config, 5, device).unwrap();
    clip.set_image_size(size).unwrap();
    let optimizer = AdamW::new(&clip.params(), AdamWConfig::default()).unwrap();
    (clip, optimizer)
}

/// What a run of steps leaves, as bits.
#[derive(Debug, PartialEq)]
struct Outcome {
    losses: Vec<u64>,
    norms: Vec<u32>,
    /// Every parameter's value and moments, by name.
    state: Vec<(String, Vec<u32>)>,
    optimizer_steps: u64,
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec_f32().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// Three steps at 16 px, a switch to 24 px (the positional embedding
/// resized, its moments restarted), three steps at 24 px; `graphs`
/// replays where it can. Every loss and norm is read after the last step,
/// as a trainer reads a step's only after queuing the next.
fn train(device: &Device, dtype: DType, graphs: Option<&mut GraphStep>) -> Outcome {
    train_model(ModelConfig::from_json_str(SMALL).unwrap(), device, dtype, graphs)
}

/// [`train`] for the model `config`.
fn train_model(config: ModelConfig, device: &Device, dtype: DType, mut graphs: Option<&mut GraphStep>) -> Outcome {
    let (mut clip, mut optimizer) = model_of(config, device, 16);
    let mut results: Vec<(Var, StepReport)> = Vec::new();
    for step in 0..6u64 {
        if step == 3 {
            assert!(clip.set_image_size(24).unwrap());
            optimizer.reset_moments(&clip.weights().visual.positional_embedding).unwrap();
            if let Some(g) = graphs.as_deref_mut() {
                g.release();
            }
        }
        let (images, ids) = batch(clip.image_size(), step);
        let lr = 1e-3 * (step + 1) as f32;
        results.push(match graphs.as_deref_mut() {
            Some(g) => g.step(&clip, &mut optimizer, &images, &ids, dtype, lr, None).unwrap(),
            None => train_step(&clip, &mut optimizer, &images, &ids, dtype, lr, None).unwrap(),
        });
    }
    let losses = results.iter().map(|(l, _)| l.tensor().to_scalar().unwrap().to_bits()).collect();
    let norms = results.iter().map(|(_, r)| r.grad_norm().unwrap().unwrap().to_bits()).collect();
    let mut state: Vec<(String, Vec<u32>)> =
        clip.params().iter().map(|p| (p.name().to_string(), bits(&p.value()))).collect();
    for (name, m, v) in optimizer.moments() {
        state.push((format!("m.{name}"), bits(m)));
        state.push((format!("v.{name}"), bits(v)));
    }
    Outcome { losses, norms, state, optimizer_steps: optimizer.steps() }
}

#[test]
fn replayed_steps_equal_plain_launches_bit_for_bit() {
    for dtype in [DType::F32, DType::BF16] {
        let (device, _) = Counting::device(11, false);
        let plain = train(&device, dtype, None);
        let mut graphs = GraphStep::new(&device);
        let replayed = train(&device, dtype, Some(&mut graphs));
        // Per phase: the first step plain, the second recorded and
        // replayed, the third replayed.
        assert_eq!(graphs.replayed_steps(), 4, "{dtype}: {:?}", graphs.used());
        assert_eq!(graphs.take_notice(), None);
        assert_eq!(plain.losses, replayed.losses, "{dtype}: losses");
        assert_eq!(plain.norms, replayed.norms, "{dtype}: gradient norms");
        assert_eq!(plain.optimizer_steps, replayed.optimizer_steps);
        for ((name, a), (_, b)) in plain.state.iter().zip(&replayed.state) {
            assert!(a == b, "{dtype}: {name} differs after replayed steps");
        }
        // Distinct steps: a loss copied once and handed out twice would
        // repeat.
        assert!(replayed.losses.windows(2).all(|w| w[0] != w[1]), "{:?}", replayed.losses);
    }
}

#[test]
fn replayed_siglip_steps_equal_plain_launches_bit_for_bit() {
    let config = Objective::Siglip.configure(ModelConfig::from_json_str(SMALL).unwrap()).unwrap();
    let (device, _) = Counting::device(14, false);
    let plain = train_model(config.clone(), &device, DType::BF16, None);
    let mut graphs = GraphStep::new(&device);
    let replayed = train_model(config, &device, DType::BF16, Some(&mut graphs));
    assert_eq!(graphs.replayed_steps(), 4, "{:?}", graphs.used());
    assert_eq!(plain, replayed, "SigLIP steps replayed from a graph differ from plain launches");
    assert!(plain.state.iter().any(|(name, _)| name == "logit_bias"), "the model has its bias");
}

#[test]
fn a_replayed_step_uploads_its_batch_and_the_scalars_and_queues_no_launch() {
    let (device, counting) = Counting::device(12, false);
    let (clip, mut optimizer) = model(&device, 16);
    let mut graphs = GraphStep::new(&device);
    let mut step = |seed: u64| {
        let (images, ids) = batch(16, seed);
        let (transfers, queued) = (counting.emulator.transfers(), counting.queued());
        graphs.step(&clip, &mut optimizer, &images, &ids, DType::BF16, 1e-3, None).unwrap();
        let (launches, gemms) = counting.queued();
        (delta(counting.emulator.transfers(), transfers), (launches - queued.0, gemms - queued.1))
    };
    let (first, plain) = step(1);
    assert_eq!((first.writes, first.reads), (4, 0), "a model's first step uploads AdamW's table too: {first:?}");
    // The lr and two bias corrections, in one upload.
    let scalars = Transfers { writes: 4, write_bytes: batch_bytes(16, 96) + 12, reads: 0, read_bytes: 0 };
    let (second, recorded) = step(2);
    assert_eq!(second, scalars, "the recorded step");
    assert_eq!(recorded, plain, "the recording holds the plain step's launches and GEMMs");
    for seed in [3, 4] {
        let (t, queued) = step(seed);
        assert_eq!(t, scalars, "a replayed step");
        assert_eq!(queued, (0, 0), "a replayed step queues its work as one graph");
    }
    assert!(plain.0 > 100, "{plain:?}");
}

#[test]
fn a_step_that_cannot_be_recorded_runs_plain_launches_and_says_so_once() {
    let (device, _) = Counting::device(13, true);
    let plain = train(&device, DType::F32, None);
    let mut graphs = GraphStep::new(&device);
    let fallen_back = train(&device, DType::F32, Some(&mut graphs));
    assert_eq!(plain, fallen_back, "a refused recording changed the steps");
    assert_eq!(graphs.replayed_steps(), 0);
    let notice = graphs.take_notice().expect("a notice");
    assert!(
        notice.starts_with("CUDA graphs: the step could not be recorded (")
            && notice.contains("the graph cannot be instantiated")
            && notice.ends_with("); plain launches"),
        "{notice}"
    );
    assert_eq!(graphs.take_notice(), None, "said once");
    let used = graphs.used();
    assert!(!used.used && used.plain_because.is_some_and(|why| why.contains("could not be recorded")));
    assert_eq!(GraphStep::new(&Device::Cpu).used().plain_because.as_deref(), Some("the CPU records nothing"));
}

#[test]
fn replayed_steps_with_patch_dropout_equal_plain_launches_bit_for_bit() {
    // Each step keeps other patches: the recording's kept-token indices
    // are rewritten in place, one more upload a step.
    let (device, counting) = Counting::device(15, false);
    let steps = |mut graphs: Option<&mut GraphStep>| {
        let (clip, mut optimizer) = model(&device, 16);
        let mut uploads = Vec::new();
        let losses = (0..4u64)
            .map(|step| {
                let (images, ids) = batch(16, step);
                let dropout = PatchDropout { prob: 0.5, seed: 2, step, first_row: 0 };
                let before = counting.emulator.transfers();
                let (loss, _) = match graphs.as_deref_mut() {
                    Some(g) => g.step(&clip, &mut optimizer, &images, &ids, DType::F32, 1e-3, Some(&dropout)),
                    None => train_step(&clip, &mut optimizer, &images, &ids, DType::F32, 1e-3, Some(&dropout)),
                }
                .unwrap();
                uploads.push(delta(counting.emulator.transfers(), before).writes);
                loss.tensor().to_scalar().unwrap().to_bits()
            })
            .collect::<Vec<_>>();
        let weights: Vec<Vec<u32>> = clip.params().iter().map(|p| bits(&p.value())).collect();
        (losses, weights, uploads)
    };
    let (plain, plain_weights, _) = steps(None);
    let mut graphs = GraphStep::new(&device);
    let (replayed, replayed_weights, uploads) = steps(Some(&mut graphs));
    assert_eq!(graphs.replayed_steps(), 3, "{:?}", graphs.used());
    assert_eq!(graphs.take_notice(), None);
    assert_eq!(replayed, plain, "losses");
    assert!(replayed_weights == plain_weights, "weights differ after replayed steps with patch dropout");
    // The batch's 3, the kept tokens and the scalars.
    assert_eq!(&uploads[2..], [5, 5], "{uploads:?}");
}

#[test]
fn indices_rewritten_in_place_equal_new_ones_in_one_upload() {
    let emulator = Arc::new(Emulator::new(14));
    let device = Device::Gpu(GpuDevice::new(emulator.clone()));
    let mut ids = Indices::from_vec("test", vec![3, 1, 3, 0, 2, 2], [2, 3], 5, &device).unwrap();
    let at = ids.gpu_ids().unwrap().gpu_ptr().unwrap();
    let new = vec![4, 4, 0, 1, 4, 2];
    let before = emulator.transfers();
    ids.rewrite("test", new.clone(), [2, 3]).unwrap();
    let t = delta(emulator.transfers(), before);
    assert_eq!((t.writes, t.write_bytes, t.reads), (1, 4 * (2 * 6 + 5 + 1), 0));
    assert_eq!(ids.gpu_ids().unwrap().gpu_ptr().unwrap(), at, "the same device memory");
    let fresh = Indices::from_vec("test", new.clone(), [2, 3], 5, &device).unwrap();
    let u32s = |t: &Tensor| t.to_vec::<u32>().unwrap();
    assert_eq!(ids.host(), &new[..]);
    assert_eq!(u32s(ids.gpu_ids().unwrap()), u32s(fresh.gpu_ids().unwrap()));
    let ((order, starts), (fresh_order, fresh_starts)) = (ids.gpu_groups().unwrap(), fresh.gpu_groups().unwrap());
    assert_eq!((u32s(order), u32s(starts)), (u32s(fresh_order), u32s(fresh_starts)));

    let shape = ids.rewrite("test", vec![1; 6], [3, 2]).unwrap_err().to_string();
    assert!(shape.contains("shape [3, 2]") && shape.contains("[2, 3]"), "{shape}");
    let bound = ids.rewrite("test", vec![0, 0, 5, 0, 0, 0], [2, 3]).unwrap_err().to_string();
    assert!(bound.contains("index 5 out of range"), "{bound}");
    assert_eq!(ids.host(), &new[..], "a refused rewrite changes nothing");
}

fn reclip(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_reclip")).args(args).env_remove("RUST_BACKTRACE").output().unwrap()
}

#[test]
fn cuda_graphs_is_checked_and_may_change_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let o = reclip(&["train", "--cuda-graphs", "bogus", "--out", out]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--cuda-graphs") && stderr.contains("bogus") && stderr.contains("auto or off"), "{stderr}");
    assert!(!Path::new(out).exists(), "a refused run wrote its folder");

    let model = dir.path().join("tiny.json");
    std::fs::write(&model, common::TINY).unwrap();
    let options = "--steps 2 --batch-size 4 --text-len 8 --low-res 8 --high-res 16 --probe-steps 1 --eval-every 0 \
                   --checkpoint-every 0 --workers 1 --device cpu --quiet --stop-after 1";
    let mut run = vec!["train", "--model", model.to_str().unwrap(), "--out", out];
    run.extend(options.split_whitespace());
    let first = reclip(&run);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let resumed = reclip(&["train", "--resume", out, "--cuda-graphs", "off", "--quiet"]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let table = String::from_utf8_lossy(&resumed.stdout);
    assert!(table.contains("CUDA graphs: off (--cuda-graphs off)"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(out).join("report.json")).unwrap()).unwrap();
    assert_eq!(report["cuda_graphs"]["used"], false);
    assert_eq!(report["cuda_graphs"]["plain_because"], "--cuda-graphs off");
}
