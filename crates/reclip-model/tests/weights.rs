//! The parameters are open_clip's: the same names and shapes as a state dict
//! open_clip saved, the same count as the config says; checkpoints round-trip
//! bit for bit and a mismatched one is refused with every problem named.

use reclip_core::{DType, Device, Tensor};
use reclip_model::checkpoint::{self, CheckpointError};
use reclip_model::{ClipWeights, ModelConfig};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/open_clip").join(name)
}

#[test]
fn names_and_shapes_match_an_open_clip_state_dict() {
    for model in ["tiny_gelu", "tiny_quickgelu"] {
        let cfg = ModelConfig::from_json_file(fixture(&format!("model_{model}.json"))).unwrap();
        let weights = ClipWeights::init(&cfg, 0, &Device::Cpu).unwrap();
        let ours: Vec<(String, Vec<usize>)> =
            weights.state_dict().into_iter().map(|(n, t)| (n, t.dims().to_vec())).collect();
        let theirs = checkpoint::load(&fixture(&format!("model_{model}.safetensors"))).unwrap();
        let mut theirs: Vec<(String, Vec<usize>)> =
            theirs.tensors.into_iter().map(|(n, t)| (n, t.dims().to_vec())).collect();
        let mut sorted = ours.clone();
        sorted.sort();
        theirs.sort();
        assert_eq!(sorted, theirs, "{model}");
        let count: usize = ours.iter().map(|(_, d)| d.iter().product::<usize>()).sum();
        assert_eq!(count as u64, cfg.num_params().unwrap(), "{model}");
    }
}

#[test]
fn an_open_clip_checkpoint_loads_and_a_saved_one_round_trips() {
    let cfg = ModelConfig::from_json_file(fixture("model_tiny_gelu.json")).unwrap();
    let weights = ClipWeights::init(&cfg, 1, &Device::Cpu).unwrap();
    let path = fixture("model_tiny_gelu.safetensors");
    let dict = checkpoint::load(&path).unwrap();
    weights.load_state_dict(&dict, &path).unwrap();
    let proj = weights.visual.proj.value().to_vec_f32().unwrap();
    assert_eq!(proj, dict.get("visual.proj").unwrap().to_vec_f32().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("model.safetensors");
    let meta = HashMap::from([("reclip.model_config".to_string(), cfg.to_json())]);
    checkpoint::save(&saved, &weights.state_dict(), meta).unwrap();
    let back = checkpoint::load(&saved).unwrap();
    assert_eq!(back.metadata["reclip.model_config"], cfg.to_json());
    let other = ClipWeights::init(&cfg, 2, &Device::Cpu).unwrap();
    other.load_state_dict(&back, &saved).unwrap();
    for ((n, a), (_, b)) in weights.state_dict().iter().zip(other.state_dict()) {
        let (a, b) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{n} changed in the round trip");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind: {leftovers:?}");
}

#[test]
fn a_mismatched_checkpoint_names_every_problem() {
    let cfg = ModelConfig::from_json_file(fixture("model_tiny_gelu.json")).unwrap();
    let weights = ClipWeights::init(&cfg, 3, &Device::Cpu).unwrap();
    let mut dict = weights.state_dict();
    dict.retain(|(n, _)| n != "ln_final.bias");
    dict.push(("visual.extra".into(), Tensor::zeros([2], DType::F32, &Device::Cpu).unwrap()));
    for (n, t) in dict.iter_mut() {
        if n == "text_projection" {
            *t = Tensor::zeros([3, 3], DType::F32, &Device::Cpu).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    checkpoint::save(&path, &dict, HashMap::new()).unwrap();
    let before = weights.visual.proj.value().to_vec_f32().unwrap();
    let err = weights.load_state_dict(&checkpoint::load(&path).unwrap(), &path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CheckpointError::Mismatch { .. }));
    assert!(msg.contains("bad.safetensors"), "{msg}");
    assert!(msg.contains("missing tensor ln_final.bias"), "{msg}");
    assert!(msg.contains("unexpected tensor visual.extra"), "{msg}");
    assert!(msg.contains("text_projection has shape [3, 3] in the checkpoint, the model needs [64, 16]"), "{msg}");
    assert_eq!(weights.visual.proj.value().to_vec_f32().unwrap(), before, "nothing is loaded on error");
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    let msg = checkpoint::load(&garbage).err().unwrap().to_string();
    assert!(msg.contains("garbage.safetensors") && msg.contains("not a valid safetensors file"), "{msg}");
}
