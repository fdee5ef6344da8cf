//! Gradient accumulation (`--accum-freq`): the gradient of a step taken in
//! K micro-batches equals that of the K·b batch taken at once, for CLIP's
//! loss and SigLIP's, on the CPU and on the device under test (the kernel
//! emulator, or a GPU under tools/gpu-check.sh).

mod common;

use reclip::autograd::{Tape, Var};
use reclip::core::{DType, Device, Result, Tensor, rng};
use reclip::loss::{clip_loss, siglip_loss};
use reclip::model::patch_dropout::PatchDropout;
use reclip::model::{Clip, ModelConfig};
use reclip::train::accumulate::accumulate_gradients;
use reclip::train::trainer::Objective;
use reclip_testkit::{Tolerance, assert_close, test_device};

const BATCH: usize = 12;

/// A batch of random 16 px images and token ids.
fn batch() -> (Tensor, Tensor) {
    let images = Tensor::randn([BATCH, 3, 16, 16], 0.0, 1.0, DType::F32, &Device::Cpu, &mut rng(5)).unwrap();
    let ids: Vec<u32> = (0..BATCH * 8).map(|i| ((i * 7919) % 49000 + 1) as u32).collect();
    (images, Tensor::from_vec(ids, [BATCH, 8], &Device::Cpu).unwrap())
}

/// The model's loss of a batch's features.
fn loss(clip: &Clip, tape: &Tape, image: &Var, text: &Var) -> Result<Var> {
    match clip.bias(tape) {
        Some(bias) => siglip_loss(image, text, &clip.log_scale(tape), &bias),
        None => clip_loss(image, text, &clip.log_scale(tape)),
    }
}

/// The loss and every parameter's gradient (by name), the batch taken at
/// once (`micro_batches` 1) or in passes.
fn gradients(
    config: &ModelConfig,
    device: &Device,
    micro_batches: usize,
    dropout: Option<&PatchDropout>,
) -> (f64, Vec<(String, Tensor)>) {
    let clip = Clip::new(config.clone(), 9, device).unwrap();
    let (images, tokens) = batch();
    let loss = if micro_batches == 1 {
        let tape = Tape::new();
        let image = clip.encode_image_dropping(&tape, &images, DType::F32, dropout).unwrap();
        let text = clip.encode_text(&tape, &tokens, DType::F32).unwrap();
        let l = loss(&clip, &tape, &image, &text).unwrap();
        l.backward().unwrap();
        l
    } else {
        accumulate_gradients(&clip, &images, &tokens, DType::F32, micro_batches, dropout, |tape, i, t| {
            loss(&clip, tape, i, t)
        })
        .unwrap()
    };
    let grads = clip
        .params()
        .iter()
        .map(|p| (p.name().to_string(), p.grad().expect("every parameter has a gradient")))
        .collect();
    (loss.tensor().to_scalar().unwrap(), grads)
}

fn check(config: &ModelConfig, device: &Device, dropout: Option<&PatchDropout>, what: &str) {
    let (whole_loss, whole) = gradients(config, device, 1, dropout);
    for k in [2, 3, 4] {
        let (loss, accumulated) = gradients(config, device, k, dropout);
        assert!((loss - whole_loss).abs() <= 1e-5 * whole_loss.abs(), "{what}, K = {k}: loss {loss} vs {whole_loss}");
        for ((name, a), (_, w)) in accumulated.iter().zip(&whole) {
            // Sums of the same terms in another order (the batch split into passes).
            let scale = w.to_vec_f64().unwrap().iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert_close(&format!("{what}, K = {k}, {name}"), w, a, Tolerance::new(1e-4, 1e-5 * scale.max(1e-12)));
        }
    }
}

#[test]
fn accumulated_gradients_equal_the_whole_batchs_on_the_cpu() {
    let config = ModelConfig::from_json_str(common::TINY).unwrap();
    check(&config, &Device::Cpu, None, "clip");
    check(&Objective::Siglip.configure(config).unwrap(), &Device::Cpu, None, "siglip");
}

#[test]
fn accumulated_gradients_under_patch_dropout_equal_the_whole_batchs() {
    // Each image keeps the patches of its row in the whole batch, whichever
    // micro-batch it falls in; the class token's and positional
    // embedding's gradients show which patches were kept.
    let config = ModelConfig::from_json_str(common::TINY).unwrap();
    let dropout = PatchDropout { prob: 0.5, seed: 3, step: 7, first_row: 0 };
    check(&config, &Device::Cpu, Some(&dropout), "clip, patch dropout 0.5");
    check(&config, &test_device(), Some(&dropout), "clip on the device, patch dropout 0.5");
    let (_, plain) = gradients(&config, &Device::Cpu, 1, None);
    let (_, dropped) = gradients(&config, &Device::Cpu, 1, Some(&dropout));
    let position =
        |g: &[(String, Tensor)]| g.iter().find(|(n, _)| n == "visual.positional_embedding").unwrap().1.clone();
    assert_ne!(position(&plain).to_vec_f64().unwrap(), position(&dropped).to_vec_f64().unwrap());
}

#[test]
fn accumulated_gradients_equal_the_whole_batchs_on_the_device() {
    let config = Objective::Siglip.configure(ModelConfig::from_json_str(common::TINY).unwrap()).unwrap();
    check(&config, &test_device(), None, "siglip on the device");
}

#[test]
fn a_batch_that_does_not_split_evenly_is_an_error() {
    let clip = Clip::new(ModelConfig::from_json_str(common::TINY).unwrap(), 9, &Device::Cpu).unwrap();
    let (images, tokens) = batch();
    let err = accumulate_gradients(&clip, &images, &tokens, DType::F32, 5, None, |tape, i, t| loss(&clip, tape, i, t))
        .expect_err("12 rows do not split into 5")
        .to_string();
    assert!(err.contains("do not split into 5 equal micro-batches"), "{err}");
}
