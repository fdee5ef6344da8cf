//! reclip reproduces open_clip's features: two tiny random open_clip models
//! (tools/make_openclip_fixtures.py) load unchanged and give the same image
//! features, text features and logits — on the CPU and on the kernel test
//! device — also at a second image size through the resized positional
//! embedding, and under FLIP's patch dropout given the patches open_clip kept.

use reclip_autograd::Tape;
use reclip_core::{DType, Device, Indices, Tensor};
use reclip_model::checkpoint::{self, StateDict};
use reclip_model::patch_dropout::kept_rows;
use reclip_model::{Clip, ModelConfig};
use reclip_testkit::test_device;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/open_clip").join(name)
}

/// max |got - want| relative to max |want|.
fn relative_error(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.dims(), want.dims());
    let (g, w) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    g.iter().zip(&w).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn load(model: &str, device: &Device) -> (Clip, StateDict) {
    let cfg = ModelConfig::from_json_file(fixture(&format!("model_{model}.json"))).unwrap();
    let clip = Clip::load(&fixture(&format!("model_{model}.safetensors")), Some(cfg), device).unwrap();
    let io = checkpoint::load(&fixture(&format!("io_{model}.safetensors"))).unwrap();
    (clip, io)
}

fn check(model: &str, device: &Device) {
    let (clip, io) = load(model, device);
    let tape = Tape::no_grad();
    let get = |n: &str| io.get(n).unwrap_or_else(|| panic!("fixture tensor {n}")).clone();
    let image = clip.encode_image(&tape, &get("images"), DType::F32).unwrap().into_tensor();
    let text = clip.encode_text(&tape, &get("text"), DType::F32).unwrap().into_tensor();
    assert!(image.device().same(device) && text.device().same(device));
    let tol = 1e-4;
    let e = relative_error(&image, &get("image_features"));
    assert!(e < tol, "{model} on {device}: image features differ by {e:.2e}");
    let e = relative_error(&text, &get("text_features"));
    assert!(e < tol, "{model} on {device}: text features differ by {e:.2e}");
    let logits = clip.logits(&image, &text).unwrap();
    let e = relative_error(&logits, &get("logits_per_image"));
    assert!(e < tol, "{model} on {device}: logits differ by {e:.2e}");

    // 48 px: open_clip resized its positional embedding with resize_pos_embed.
    let image48 = clip.encode_image(&tape, &get("images_48px"), DType::F32).unwrap().into_tensor();
    let e = relative_error(&image48, &get("image_features_48px"));
    assert!(e < tol, "{model} on {device}: 48px image features differ by {e:.2e}");

    // FLIP's patch dropout at 0.5: the patches open_clip kept, gathered
    // after the positional embedding and before ln_pre.
    let kept = get("patch_dropout_kept");
    let width = kept.dims()[1];
    let kept: Vec<Vec<u32>> = kept.to_vec::<u32>().unwrap().chunks(width).map(<[u32]>::to_vec).collect();
    let tokens = 1 + (clip.image_size() / clip.config().vision_cfg.patch_size).pow(2);
    let rows = kept_rows(&kept, kept.len(), tokens).unwrap();
    let rows = Indices::from_vec("test", rows.clone(), [rows.len()], kept.len() * tokens, device).unwrap();
    let dropped = clip.encode_image_kept(&tape, &get("images"), DType::F32, Some(&rows)).unwrap().into_tensor();
    let e = relative_error(&dropped, &get("image_features_patch_dropout"));
    assert!(e < tol, "{model} on {device}: image features under patch dropout differ by {e:.2e}");
    assert!(relative_error(&dropped, &image) > 1e-2, "{model}: dropping patches changes the features");
}

#[test]
fn features_match_open_clip_on_the_cpu() {
    check("tiny_gelu", &Device::Cpu);
    check("tiny_quickgelu", &Device::Cpu);
}

#[test]
fn features_match_open_clip_on_the_test_device() {
    let device = test_device();
    check("tiny_gelu", &device);
    check("tiny_quickgelu", &device);
}

#[test]
fn switching_the_image_size_resizes_the_positional_embedding_as_open_clip() {
    let (mut clip, io) = load("tiny_gelu", &Device::Cpu);
    assert!(clip.set_image_size(48).unwrap());
    assert_eq!(clip.image_size(), 48);
    let got = clip.weights().visual.positional_embedding.value();
    let want = io.get("visual.positional_embedding_48px").unwrap();
    let e = relative_error(&got, want);
    assert!(e < 1e-5, "resized positional embedding differs by {e:.2e}");
    assert!(clip.set_image_size(50).is_err(), "50 is not a multiple of the patch size 8");
}
