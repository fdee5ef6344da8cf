//! SigLIP's sigmoid loss on the CPU: equal to open_clip's `SigLipLoss` on the
//! fixture tests/fixtures/open_clip/siglip_loss.safetensors (open_clip 3.3.0,
//! f64 autograd; see its JSON sidecar), to the plain reference of the
//! definition (siglip_reference), to finite differences through the tape
//! (gradcheck), and the blocks of the distributed form adding up to the
//! single-rank loss and gradients.

mod common;
mod siglip_reference;

use common::assert_close;
use reclip_autograd::gradcheck::gradcheck;
use reclip_autograd::{Tape, Var};
use reclip_core::{DType, Device, Tensor};
use reclip_loss::{
    MAX_LOG_SCALE, siglip_loss, siglip_loss_backward, siglip_loss_forward, siglip_loss_negatives,
    siglip_loss_negatives_forward,
};
use reclip_testkit::randn;
use safetensors::{Dtype, SafeTensors};
use siglip_reference::{Case, Values};
use std::path::PathBuf;

fn scalar(v: f64) -> Tensor {
    Tensor::from_vec(vec![v], [1], &Device::Cpu).unwrap()
}

/// A float32 tensor of the fixture, as f64 values and its shape.
fn read(st: &SafeTensors<'_>, name: &str) -> (Vec<f64>, Vec<usize>) {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    assert_eq!(view.dtype(), Dtype::F32, "fixture tensor {name} is not float32");
    let values = view.data().chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect();
    (values, view.shape().to_vec())
}

/// The fixture's cases and open_clip's values for them.
fn fixture() -> Vec<(String, Case, Values)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/open_clip/siglip_loss.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("siglip_loss.safetensors parses");
    ["b7_d5", "b33_d16", "b8_d12_negatives"]
        .into_iter()
        .map(|key| {
            let get = |what: &str| read(&st, &format!("{key}.{what}"));
            let (image, shape) = get("image_features");
            let case = Case {
                image,
                text: get("text_features").0,
                m: shape[0],
                n: shape[0],
                d: shape[1],
                t: get("logit_scale").0[0],
                bias: get("logit_bias").0[0],
                diagonal: !key.ends_with("negatives"),
            };
            let want = Values {
                loss: get("loss").0[0],
                d_image: get("grad_image_features").0,
                d_text: get("grad_text_features").0,
                d_log_scale: get("grad_logit_scale").0[0],
                d_bias: get("grad_logit_bias").0[0],
            };
            (key.to_string(), case, want)
        })
        .collect()
}

/// Loss and gradients of the fused path on the CPU in `dtype`, as f64.
fn fused(c: &Case, dtype: DType) -> Values {
    let tensor = |v: &[f64], rows: usize| Tensor::from_f64s(v, [rows, c.d], dtype, &Device::Cpu).unwrap();
    let (image, text) = (tensor(&c.image, c.m), tensor(&c.text, c.n));
    let forward = if c.diagonal { siglip_loss_forward } else { siglip_loss_negatives_forward };
    let (loss, saved) = forward(&image, &text, &scalar(c.t), &scalar(c.bias)).unwrap();
    let g = siglip_loss_backward(&saved, &Tensor::ones([], loss.dtype(), &Device::Cpu).unwrap()).unwrap();
    Values {
        loss: loss.to_scalar().unwrap(),
        d_image: g.image.to_vec_f64().unwrap(),
        d_text: g.text.to_vec_f64().unwrap(),
        d_log_scale: g.log_scale.to_scalar().unwrap(),
        d_bias: g.bias.to_scalar().unwrap(),
    }
}

fn assert_matches(what: &str, got: &Values, want: &Values, rtol: f64, atol: f64) {
    assert_close(&format!("{what} loss"), &[got.loss], &[want.loss], rtol, atol);
    assert_close(&format!("{what} d_image"), &got.d_image, &want.d_image, rtol, atol);
    assert_close(&format!("{what} d_text"), &got.d_text, &want.d_text, rtol, atol);
    assert_close(&format!("{what} d_log_scale"), &[got.d_log_scale], &[want.d_log_scale], rtol, atol);
    assert_close(&format!("{what} d_bias"), &[got.d_bias], &[want.d_bias], rtol, atol);
}

#[test]
fn the_fixture_agrees_with_the_plain_reference() {
    for (key, case, want) in fixture() {
        assert!(case.t <= f64::from(MAX_LOG_SCALE), "{key}: t = {} is beyond open_clip's clamp", case.t);
        let independent = siglip_reference::by_differences(&case);
        assert_matches(&format!("{key} reference vs open_clip"), &independent, &want, 1e-6, 1e-7);
    }
}

#[test]
fn the_loss_and_its_gradients_equal_open_clips() {
    for (key, case, want) in fixture() {
        assert_matches(&format!("{key} f64"), &fused(&case, DType::F64), &want, 1e-6, 1e-7);
        assert_matches(&format!("{key} f32"), &fused(&case, DType::F32), &want, 1e-4, 1e-6);
    }
}

/// A random case of `m` images and `n` texts (shared components make the
/// matching pairs score higher, as in training).
fn random_case(m: usize, n: usize, d: usize, t: f64, bias: f64, diagonal: bool, seed: u64) -> Case {
    let image = randn(&[m, d], DType::F64, seed).affine(2.0, 0.0).unwrap().to_vec_f64().unwrap();
    let text = randn(&[n, d], DType::F64, seed + 1).to_vec_f64().unwrap();
    Case { image, text, m, n, d, t, bias, diagonal }
}

#[test]
fn the_formula_reference_agrees_with_the_differences() {
    for (m, n, diagonal) in [(6, 6, true), (5, 7, false)] {
        let case = random_case(m, n, 4, 2.3, -3.0, diagonal, 9);
        let what = format!("m={m} n={n}");
        assert_matches(
            &what,
            &siglip_reference::by_formula(&case),
            &siglip_reference::by_differences(&case),
            1e-6,
            1e-9,
        );
    }
}

#[test]
fn the_fused_loss_equals_the_definition_across_its_tiles() {
    // Blocks of 64 rows and tiles of 256 columns: partial ones on both sides,
    // a rectangular block of negatives, a clamped scale (t = 5 > ln 100:
    // no gradient for t), and f32 on the same inputs.
    for (m, n, d, t, diagonal) in
        [(1, 1, 3, 2.3, true), (70, 70, 9, 2.3, true), (65, 300, 4, 1.0, false), (40, 40, 6, 5.0, true)]
    {
        let case = random_case(m, n, d, t, -6.0, diagonal, (m * 7 + n) as u64);
        let want = siglip_reference::by_formula(&case);
        let what = format!("m={m} n={n} d={d} t={t}");
        assert_matches(&format!("{what} f64"), &fused(&case, DType::F64), &want, 1e-10, 1e-13);
        // Gradient elements are sums of terms of either sign: f32 is held to
        // the scale of the largest.
        let largest = want.d_image.iter().chain(&want.d_text).fold(0.0f64, |a, v| a.max(v.abs()));
        assert_matches(&format!("{what} f32"), &fused(&case, DType::F32), &want, 1e-4, 1e-5 * largest.max(1e-2));
    }
}

#[test]
fn gradients_match_finite_differences_through_the_tape() {
    let (image, text) = (randn(&[6, 5], DType::F64, 1), randn(&[6, 5], DType::F64, 2));
    let other = randn(&[4, 5], DType::F64, 3);
    for t in [2.3, 5.0] {
        let (t, b) = (scalar(t), scalar(-3.0));
        gradcheck(|v| siglip_loss(&v[0], &v[1], &v[2], &v[3]), &[&image, &text, &t, &b])
            .unwrap_or_else(|e| panic!("{e}"));
        gradcheck(|v| siglip_loss_negatives(&v[0], &v[1], &v[2], &v[3]), &[&image, &other, &t, &b])
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn the_blocks_of_the_distributed_form_add_up_to_the_whole_batch() {
    // Three ranks of five pairs: rank r's loss is its images against its own
    // texts plus every other rank's block of texts (negatives only); the mean
    // over ranks is the whole batch's loss, and the gradient of that mean is
    // the whole batch's gradient.
    let (world, b, d) = (3, 5, 4);
    let image = randn(&[world * b, d], DType::F64, 4);
    let text = randn(&[world * b, d], DType::F64, 5);
    let (t, bias) = (scalar(2.0), scalar(-4.0));
    let whole = |v: &[Var]| siglip_loss(&v[0], &v[1], &v[2], &v[3]);
    let ranks = |v: &[Var]| -> reclip_core::Result<Var> {
        let block = |x: &Var, r: usize| x.narrow(0, r * b, b);
        let mut total: Option<Var> = None;
        for r in 0..world {
            let images = block(&v[0], r)?;
            let mut loss = siglip_loss(&images, &block(&v[1], r)?, &v[2], &v[3])?;
            for q in (0..world).filter(|&q| q != r) {
                loss = loss.add(&siglip_loss_negatives(&images, &block(&v[1], q)?, &v[2], &v[3])?)?;
            }
            total = Some(match total {
                Some(sum) => sum.add(&loss)?,
                None => loss,
            });
        }
        total.expect("three ranks").affine(1.0 / world as f64, 0.0)
    };
    let run = |f: &dyn Fn(&[Var]) -> reclip_core::Result<Var>| -> Vec<Vec<f64>> {
        let tape = Tape::new();
        let v: Vec<Var> = [&image, &text, &t, &bias].iter().map(|x| tape.input((*x).clone())).collect();
        let loss = f(&v).unwrap();
        let grads = loss.backward_with(Tensor::ones([], DType::F64, &Device::Cpu).unwrap()).unwrap();
        let mut out = vec![vec![loss.tensor().to_scalar().unwrap()]];
        out.extend(v.iter().map(|x| grads.get(x).expect("tracked").to_vec_f64().unwrap()));
        out
    };
    let (want, got) = (run(&whole), run(&ranks));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_close(&format!("output {i}"), g, w, 1e-12, 1e-14);
    }
}

#[test]
fn bad_inputs_are_errors_that_name_the_problem() {
    let c = |t: Tensor| Var::constant(t);
    let (t, b) = (c(scalar(2.3)), c(scalar(-10.0)));
    let err = |r: reclip_core::Result<Var>| r.expect_err("an error").to_string();
    let message = err(siglip_loss(&c(randn(&[4, 3], DType::F32, 1)), &c(randn(&[5, 3], DType::F32, 2)), &t, &b));
    assert!(message.contains("must have the same shape"), "{message}");
    let message =
        err(siglip_loss_negatives(&c(randn(&[4, 3], DType::F32, 1)), &c(randn(&[5, 2], DType::F32, 2)), &t, &b));
    assert!(message.contains("must have the same width"), "{message}");
    let wide_bias = c(randn(&[2], DType::F32, 3));
    let message =
        err(siglip_loss(&c(randn(&[4, 3], DType::F32, 1)), &c(randn(&[4, 3], DType::F32, 2)), &t, &wide_bias));
    assert!(message.contains("logit_bias must have shape [] or [1]"), "{message}");
}
