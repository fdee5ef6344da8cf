//! Gradient accumulation (`--accum-freq`): the gradient of a step taken in
//! K micro-batches equals that of the K·b batch taken at once, for CLIP's
//! loss and SigLIP's, on the CPU and on the device under test (the kernel
//! emulator, or a GPU under tools/gpu-check.sh).

mod common;

use reclip::autograd::{Tape, Var};
use reclip::core::{DType, Device, Result, Tensor, rng};
use reclip::loss::{clip_loss, siglip_loss};
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
fn gradients(config: &ModelConfig, device: &Device, micro_batches: usize) -> (f64, Vec<(String, Tensor)>) {
    let clip = Clip::new(config.clone(), 9, device).unwrap();
    let (images, tokens) = batch();
    let loss = if micro_batches == 1 {
        let tape = Tape::new();
        let image = clip.encode_image(&tape, &images, DType::F32).unwrap();
        let text = clip.encode_text(&tape, &tokens, DType::F32).unwrap();
        let l = loss(&clip, &tape, &image, &text).unwrap();
        l.backward().unwrap();
        l
    } else {
        accumulate_gradients(&clip, &images, &tokens, DType::F32, micro_batches, |tape, i, t| loss(&clip, tape, i, t))
            .unwrap()
    };
    let grads = clip
        .params()
        .iter()
        .map(|p| (p.name().to_string(), p.grad().expect("every parameter has a gradient")))
        .collect();
    (loss.tensor().to_scalar().unwrap(), grads)
}

fn check(config: &ModelConfig, device: &Device, what: &str) {
    let (whole_loss, whole) = gradients(config, device, 1);
    for k in [2, 3, 4] {
        let (loss, accumulated) = gradients(config, device, k);
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
    check(&config, &Device::Cpu, "clip");
    check(&Objective::Siglip.configure(config).unwrap(), &Device::Cpu, "siglip");
}

#[test]
fn accumulated_gradients_equal_the_whole_batchs_on_the_device() {
    let config = Objective::Siglip.configure(ModelConfig::from_json_str(common::TINY).unwrap()).unwrap();
    check(&config, &test_device(), "siglip on the device");
}

#[test]
fn a_batch_that_does_not_split_evenly_is_an_error() {
    let clip = Clip::new(ModelConfig::from_json_str(common::TINY).unwrap(), 9, &Device::Cpu).unwrap();
    let (images, tokens) = batch();
    let err = accumulate_gradients(&clip, &images, &tokens, DType::F32, 5, |tape, i, t| loss(&clip, tape, i, t))
        .expect_err("12 rows do not split into 5")
        .to_string();
    assert!(err.contains("do not split into 5 equal micro-batches"), "{err}");
}
