//! The loss equals open_clip's ClipLoss on the same inputs: the fixture
//! tests/fixtures/open_clip/clip_loss.safetensors (open_clip 3.3.0, PyTorch,
//! f64 autograd through F.normalize and exp; see its JSON sidecar) holds
//! the inputs, the loss and the gradients with respect to the unnormalised
//! features and the log-temperature. The expected values are also derived
//! independently here, from the plain f64 reference of the definition.

mod common;
mod reference;

use reclip_core::{DType, Device, Tensor};
use reclip_loss::{MAX_LOG_SCALE, clip_loss_backward, clip_loss_forward};
use safetensors::{Dtype, SafeTensors};
use std::path::PathBuf;

fn fixture_bytes() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/open_clip/clip_loss.safetensors");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A float32 tensor of the fixture, as f64 values and its shape.
fn read(st: &SafeTensors<'_>, name: &str) -> (Vec<f64>, Vec<usize>) {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    assert_eq!(view.dtype(), Dtype::F32, "fixture tensor {name} is not float32");
    let values = view.data().chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect();
    (values, view.shape().to_vec())
}

struct Case {
    name: &'static str,
    image: Vec<f64>,
    text: Vec<f64>,
    b: usize,
    d: usize,
    t: f64,
    /// open_clip's values.
    want: reference::Expected,
}

fn cases() -> Vec<Case> {
    let bytes = fixture_bytes();
    let st = SafeTensors::deserialize(&bytes).expect("clip_loss.safetensors parses");
    ["b7_d5", "b33_d16"]
        .into_iter()
        .map(|name| {
            let get = |what: &str| read(&st, &format!("{name}.{what}"));
            let (image, shape) = get("image_features");
            let (text, _) = get("text_features");
            Case {
                name,
                b: shape[0],
                d: shape[1],
                t: get("logit_scale").0[0],
                want: reference::Expected {
                    loss: get("loss").0[0],
                    d_image: get("grad_image_features").0,
                    d_text: get("grad_text_features").0,
                    d_log_scale: get("grad_logit_scale").0[0],
                },
                image,
                text,
            }
        })
        .collect()
}

fn fused(case: &Case, dtype: DType) -> reference::Expected {
    let tensor = |v: &[f64]| Tensor::from_f64s(v, [case.b, case.d], dtype, &Device::Cpu).unwrap();
    let t = Tensor::from_f64s(&[case.t], [], DType::F32, &Device::Cpu).unwrap();
    let (loss, saved) = clip_loss_forward(&tensor(&case.image), &tensor(&case.text), &t).unwrap();
    let g = clip_loss_backward(&saved, &Tensor::ones([], loss.dtype(), &Device::Cpu).unwrap()).unwrap();
    reference::Expected {
        loss: loss.to_scalar().unwrap(),
        d_image: g.image.to_vec_f64().unwrap(),
        d_text: g.text.to_vec_f64().unwrap(),
        d_log_scale: g.log_scale.to_scalar().unwrap(),
    }
}

fn assert_matches(what: &str, got: &reference::Expected, want: &reference::Expected, rtol: f64, atol: f64) {
    common::assert_close(&format!("{what} loss"), &[got.loss], &[want.loss], rtol, atol);
    common::assert_close(&format!("{what} d_image"), &got.d_image, &want.d_image, rtol, atol);
    common::assert_close(&format!("{what} d_text"), &got.d_text, &want.d_text, rtol, atol);
    common::assert_close(&format!("{what} d_log_scale"), &[got.d_log_scale], &[want.d_log_scale], rtol, atol);
}

#[test]
fn the_fixture_agrees_with_the_plain_reference() {
    for case in cases() {
        // One case puts t at the clamp's boundary, where open_clip's
        // parameter clamp leaves it: it must not count as clamped.
        assert!(case.t <= f64::from(MAX_LOG_SCALE), "{}: t = {} is beyond open_clip's clamp", case.name, case.t);
        let independent = if case.b * case.d <= 64 {
            reference::by_differences(&case.image, &case.text, case.b, case.d, case.t)
        } else {
            reference::by_formula(&case.image, &case.text, case.b, case.d, case.t)
        };
        // The fixture rounded f64 results to f32.
        assert_matches(&format!("{} reference vs open_clip", case.name), &independent, &case.want, 1e-6, 1e-7);
    }
}

#[test]
fn the_loss_and_its_gradients_equal_open_clips() {
    for case in cases() {
        let f64_path = fused(&case, DType::F64);
        assert_matches(&format!("{} f64", case.name), &f64_path, &case.want, 1e-6, 1e-7);
        let f32_path = fused(&case, DType::F32);
        assert_matches(&format!("{} f32", case.name), &f32_path, &case.want, 1e-4, 1e-6);
    }
}
