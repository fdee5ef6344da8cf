//! Whole training steps on the device under test (the kernel emulator, or a
//! GPU under tools/gpu-check.sh) against the same steps on the CPU: every
//! kernel of the forward, the backward and the fused optimizer, together,
//! with CLIP's softmax loss and with SigLIP's sigmoid loss.

use reclip::core::{DType, Device, Tensor, rng};
use reclip::model::{Clip, ModelConfig};
use reclip::train::trainer::Objective;
use reclip::train::{AdamW, AdamWConfig, train_step};
use reclip_testkit::{Tolerance, assert_close, test_device};

// A small vocabulary keeps the embedding table, and so the optimizer's
// launches over every parameter, small enough for the emulator.
const TINY: &str = r#"{
  "embed_dim": 32,
  "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32, "mlp_ratio": 2.0},
  "text_cfg": {"context_length": 16, "vocab_size": 512, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.0}
}"#;

const BATCH: usize = 12;

/// A batch of random images at `size` and random token ids.
fn batch(step: u64, size: usize) -> (Tensor, Tensor) {
    let mut r = rng(100 + step);
    let images = Tensor::randn([BATCH, 3, size, size], 0.0, 1.0, DType::F32, &Device::Cpu, &mut r).unwrap();
    let ids: Vec<u32> = (0..BATCH * 16).map(|i| ((i as u64 * 7919 + step * 31) % 511 + 1) as u32).collect();
    (images, Tensor::from_vec(ids, [BATCH, 16], &Device::Cpu).unwrap())
}

/// Losses of `steps` training steps, and the model afterwards.
fn train(device: &Device, dtype: DType, steps: usize) -> (Vec<f64>, Clip) {
    train_model(ModelConfig::from_json_str(TINY).unwrap(), device, dtype, steps)
}

/// [`train`] for the model `cfg`.
fn train_model(cfg: ModelConfig, device: &Device, dtype: DType, steps: usize) -> (Vec<f64>, Clip) {
    let mut clip = Clip::new(cfg, 7, device).unwrap();
    clip.set_image_size(16).unwrap();
    let mut optimizer = AdamW::new(&clip.params(), AdamWConfig::default()).unwrap();
    let mut losses = Vec::new();
    for step in 0..steps {
        // Switch resolution mid-run, as RECLIP's finetune does.
        if step == steps - 1 && clip.set_image_size(32).unwrap() {
            optimizer.reset_moments(&clip.weights().visual.positional_embedding).unwrap();
        }
        let (images, ids) = batch(step as u64, clip.image_size());
        let (loss, _) = train_step(&clip, &mut optimizer, &images, &ids, dtype, 1e-3, None).unwrap();
        losses.push(loss.tensor().to_scalar().unwrap());
    }
    (losses, clip)
}

#[test]
fn training_steps_match_the_cpu() {
    let (cpu_losses, cpu) = train(&Device::Cpu, DType::F32, 3);
    let (dev_losses, dev) = train(&test_device(), DType::F32, 3);
    for (c, d) in cpu_losses.iter().zip(&dev_losses) {
        assert!((c - d).abs() < 1e-3 * c.abs().max(1.0), "losses {cpu_losses:?} vs {dev_losses:?}");
    }
    for (pc, pd) in cpu.params().iter().zip(dev.params()) {
        assert_close(pc.name(), &pc.value(), &pd.value(), Tolerance::new(2e-3, 2e-4));
    }
}

#[test]
fn bf16_training_steps_track_the_f32_ones() {
    let (f32_losses, _) = train(&Device::Cpu, DType::F32, 3);
    let (bf16_losses, model) = train(&test_device(), DType::BF16, 3);
    for (a, b) in f32_losses.iter().zip(&bf16_losses) {
        assert!((a - b).abs() < 0.05 * a.abs(), "f32 {f32_losses:?} vs bf16 {bf16_losses:?}");
    }
    let v: Tensor = model.weights().visual.proj.value();
    assert_eq!(v.dtype(), DType::F32, "master weights stay f32");
}

#[test]
fn siglip_training_steps_match_the_cpu() {
    let cfg = Objective::Siglip.configure(ModelConfig::from_json_str(TINY).unwrap()).unwrap();
    let (cpu_losses, cpu) = train_model(cfg.clone(), &Device::Cpu, DType::F32, 3);
    let (dev_losses, dev) = train_model(cfg, &test_device(), DType::F32, 3);
    for (c, d) in cpu_losses.iter().zip(&dev_losses) {
        assert!((c - d).abs() < 1e-3 * c.abs().max(1.0), "losses {cpu_losses:?} vs {dev_losses:?}");
    }
    // The bias is trained: it moved from open_clip's −10.
    let bias = dev.logit_bias().expect("a SigLIP model has a logit bias").value().to_scalar().unwrap();
    assert!(bias != -10.0, "the logit bias did not move");
    for (pc, pd) in cpu.params().iter().zip(dev.params()) {
        assert_close(pc.name(), &pc.value(), &pd.value(), Tolerance::new(2e-3, 2e-4));
    }
}
