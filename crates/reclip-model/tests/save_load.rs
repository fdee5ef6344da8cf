//! A model trained a few steps, saved and loaded, computes bit-identical
//! features.

use reclip_autograd::Tape;
use reclip_core::{DType, Device, Tensor, rng};
use reclip_loss::clip_loss;
use reclip_model::{Clip, ModelConfig};

const TINY: &str = r#"{
  "embed_dim": 16,
  "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 32, "mlp_ratio": 2.0},
  "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 1, "layers": 1, "mlp_ratio": 2.0}
}"#;

fn inputs(seed: u64) -> (Tensor, Tensor) {
    let images = Tensor::randn([4, 3, 16, 16], 0.0, 1.0, DType::F32, &Device::Cpu, &mut rng(seed)).unwrap();
    let ids: Vec<u32> = (0..32).map(|i| ((i * 37 + seed as usize) % 99) as u32).collect();
    (images, Tensor::from_vec(ids, [4, 8], &Device::Cpu).unwrap())
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec_f32().unwrap().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn trained_saved_and_loaded_gives_identical_outputs() {
    let clip = Clip::new(ModelConfig::from_json_str(TINY).unwrap(), 1, &Device::Cpu).unwrap();
    for step in 0..3 {
        let (images, ids) = inputs(step);
        let tape = Tape::new();
        let i = clip.encode_image(&tape, &images, DType::F32).unwrap();
        let t = clip.encode_text(&tape, &ids, DType::F32).unwrap();
        clip_loss(&i, &t, &clip.log_scale(&tape)).unwrap().backward().unwrap();
        for p in clip.params() {
            let g = p.take_grad().expect("every parameter is used");
            p.set_value(p.value().sub(&g.scale(0.05).unwrap()).unwrap());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    clip.save(&path).unwrap();
    let loaded = Clip::load(&path, None, &Device::Cpu).unwrap();
    assert_eq!(loaded.config(), clip.config());
    let (images, ids) = inputs(9);
    let tape = Tape::no_grad();
    for (a, b) in [
        (
            clip.encode_image(&tape, &images, DType::F32).unwrap(),
            loaded.encode_image(&tape, &images, DType::F32).unwrap(),
        ),
        (clip.encode_text(&tape, &ids, DType::F32).unwrap(), loaded.encode_text(&tape, &ids, DType::F32).unwrap()),
    ] {
        assert_eq!(bits(a.tensor()), bits(b.tensor()));
    }
    assert_eq!(bits(&clip.weights().logit_scale.value()), bits(&loaded.weights().logit_scale.value()));
}
