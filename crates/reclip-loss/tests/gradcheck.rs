//! The fused loss on the CPU: finite-difference gradient checks in f64, and
//! equality with a plain B×B reference for B up to 512 (f64 and f32).

mod common;
mod reference;

use reclip_autograd::gradcheck::gradcheck;
use reclip_autograd::{Tape, Var};
use reclip_core::{DType, Device, Tensor};
use reclip_loss::{clip_loss, clip_loss_backward, clip_loss_forward, clip_loss_local};
use reclip_testkit::randn;

/// open_clip's initial temperature: t = ln(1/0.07), s ≈ 14.3.
const T_INIT: f64 = 2.659260036932778;

fn scalar(v: f64) -> Tensor {
    Tensor::from_vec(vec![v], [1], &Device::Cpu).unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    let image = randn(&[7, 5], DType::F64, 1);
    let text = randn(&[7, 5], DType::F64, 2);
    // Unclamped, and clamped (exp(5) > 100: t gets no gradient, which the
    // differences confirm).
    for t in [T_INIT, 5.0] {
        let t = scalar(t);
        gradcheck(|v| clip_loss(&v[0], &v[1], &v[2]), &[&image, &text, &t]).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn local_form_gradients_match_finite_differences() {
    let gathered_image = randn(&[9, 5], DType::F64, 3);
    let gathered_text = randn(&[9, 5], DType::F64, 4);
    let rank = 1;
    let local_image = gathered_image.narrow(0, 3, 3).unwrap().contiguous().unwrap();
    let local_text = gathered_text.narrow(0, 3, 3).unwrap().contiguous().unwrap();
    let t = scalar(T_INIT);
    gradcheck(
        |v| clip_loss_local(&v[0], &v[1], &v[2], &v[3], rank, &v[4]),
        &[&local_image, &local_text, &gathered_image, &gathered_text, &t],
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_formula_reference_agrees_with_its_own_differences() {
    let (b, d) = (6, 4);
    let image = randn(&[b, d], DType::F64, 5).to_vec_f64().unwrap();
    let text = randn(&[b, d], DType::F64, 6).to_vec_f64().unwrap();
    let f = reference::by_formula(&image, &text, b, d, T_INIT);
    let g = reference::by_differences(&image, &text, b, d, T_INIT);
    assert!((f.loss - g.loss).abs() < 1e-14);
    common::assert_close("d_image", &f.d_image, &g.d_image, 1e-6, 1e-8);
    common::assert_close("d_text", &f.d_text, &g.d_text, 1e-6, 1e-8);
    common::assert_close("d_log_scale", &[f.d_log_scale], &[g.d_log_scale], 1e-6, 1e-8);
}

/// Loss and gradients of the fused path on the CPU, as f64.
fn fused(image: &Tensor, text: &Tensor, t: f64) -> reference::Expected {
    let (loss, saved) = clip_loss_forward(image, text, &scalar(t)).unwrap();
    let grads = clip_loss_backward(&saved, &Tensor::ones([], loss.dtype(), &Device::Cpu).unwrap()).unwrap();
    reference::Expected {
        loss: loss.to_scalar().unwrap(),
        d_image: grads.image.to_vec_f64().unwrap(),
        d_text: grads.text.to_vec_f64().unwrap(),
        d_log_scale: grads.log_scale.to_scalar().unwrap(),
    }
}

#[test]
fn matches_the_plain_reference_up_to_b_512() {
    // Sizes around the CPU's 64-row blocks and 256-column tiles.
    for (b, d, t) in [(1, 3, T_INIT), (2, 8, T_INIT), (65, 16, 4.0), (257, 7, T_INIT), (512, 32, 4.6)] {
        let image64 = randn(&[b, d], DType::F64, 10 + b as u64);
        let text64 = randn(&[b, d], DType::F64, 20 + b as u64);
        let want = reference::by_formula(&image64.to_vec_f64().unwrap(), &text64.to_vec_f64().unwrap(), b, d, t);
        // Gradient elements are sums of B terms of either sign: compare them
        // on the scale of the largest one.
        let scale = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (dtype, rtol) in [(DType::F64, 1e-11), (DType::F32, 2e-5)] {
            let got = fused(&image64.to_dtype(dtype).unwrap(), &text64.to_dtype(dtype).unwrap(), t);
            let what = format!("B={b} d={d} {dtype}");
            assert!(
                (got.loss - want.loss).abs() <= rtol * want.loss.abs(),
                "{what}: loss {} vs {}",
                got.loss,
                want.loss
            );
            let atol = |v: &[f64]| rtol * scale(v);
            common::assert_close(&format!("{what} d_image"), &got.d_image, &want.d_image, rtol, atol(&want.d_image));
            common::assert_close(&format!("{what} d_text"), &got.d_text, &want.d_text, rtol, atol(&want.d_text));
            common::assert_close(&format!("{what} dt"), &[got.d_log_scale], &[want.d_log_scale], rtol, rtol);
        }
    }
}

#[test]
fn a_zero_embedding_is_normalised_to_zero_as_in_torch() {
    let (b, d) = (5, 4);
    let mut image = randn(&[b, d], DType::F64, 30).to_vec_f64().unwrap();
    image[2 * d..3 * d].iter_mut().for_each(|v| *v = 0.0);
    let text = randn(&[b, d], DType::F64, 31).to_vec_f64().unwrap();
    let want = reference::by_formula(&image, &text, b, d, T_INIT);
    let got = fused(
        &Tensor::from_vec(image, [b, d], &Device::Cpu).unwrap(),
        &Tensor::from_vec(text, [b, d], &Device::Cpu).unwrap(),
        T_INIT,
    );
    assert!((got.loss - want.loss).abs() < 1e-12);
    common::assert_close("d_image", &got.d_image, &want.d_image, 1e-10, 1e-3);
    common::assert_close("d_text", &got.d_text, &want.d_text, 1e-10, 1e-12);
}

#[test]
fn bf16_features_give_an_f32_loss_and_bf16_gradients() {
    let tape = Tape::new();
    let image = tape.input(randn(&[9, 6], DType::BF16, 40));
    let text = tape.input(randn(&[9, 6], DType::BF16, 41));
    let t = tape.input(Tensor::scalar(T_INIT, DType::F32, &Device::Cpu).unwrap());
    let loss = clip_loss(&image, &text, &t).unwrap();
    assert_eq!((loss.tensor().dtype(), loss.tensor().dims()), (DType::F32, &[][..]));
    let grads = loss.backward().unwrap();
    assert_eq!(grads.get(&image).unwrap().dtype(), DType::BF16);
    assert_eq!(grads.get(&text).unwrap().dims(), &[9, 6]);
    let dt = grads.get(&t).unwrap();
    assert_eq!((dt.dtype(), dt.dims()), (DType::F32, &[][..]));

    // The same values as f32 features that hold the bf16 values.
    let f32_of = |v: &Var| v.tensor().to_dtype(DType::F32).unwrap();
    let want = fused(&f32_of(&image), &f32_of(&text), T_INIT);
    assert!((loss.tensor().to_scalar().unwrap() - want.loss).abs() < 1e-6);
    assert!((dt.to_scalar().unwrap() - want.d_log_scale).abs() < 1e-6);
    let d_image = grads.get(&image).unwrap().to_vec_f64().unwrap();
    common::assert_close("bf16 d_image", &d_image, &want.d_image, 1e-2, 1e-4);
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let image = randn(&[300, 24], DType::F32, 50);
    let text = randn(&[300, 24], DType::F32, 51);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| fused(&image, &text, T_INIT))
    };
    let (one, three) = (run(1), run(3));
    assert_eq!(one.loss.to_bits(), three.loss.to_bits());
    assert_eq!(one.d_log_scale.to_bits(), three.d_log_scale.to_bits());
    assert!(one.d_image.iter().zip(&three.d_image).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(one.d_text.iter().zip(&three.d_text).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn bad_inputs_are_errors_that_name_the_problem() {
    let x = randn(&[4, 3], DType::F32, 60);
    let t = Tensor::scalar(T_INIT, DType::F32, &Device::Cpu).unwrap();
    let err = |r: reclip_core::Result<(Tensor, reclip_loss::ClipLossSaved)>| r.err().expect("an error").to_string();
    assert!(err(clip_loss_forward(&x, &randn(&[5, 3], DType::F32, 61), &t)).contains("[4, 3]"));
    assert!(err(clip_loss_forward(&x.reshape([12]).unwrap(), &x, &t)).contains("image_features must be"));
    assert!(err(clip_loss_forward(&x, &x.to_dtype(DType::BF16).unwrap(), &t)).contains("text_features is bf16"));
    assert!(err(clip_loss_forward(&x, &x, &Tensor::zeros([2], DType::F32, &Device::Cpu).unwrap())).contains("[2]"));
    assert!(
        err(clip_loss_forward(&randn(&[0, 3], DType::F32, 62), &randn(&[0, 3], DType::F32, 63), &t)).contains("empty")
    );

    let local = |rows: usize, gathered: usize, rank: usize| {
        let l = randn(&[rows, 3], DType::F32, 64);
        let g = randn(&[gathered, 3], DType::F32, 65);
        reclip_loss::clip_loss_local_forward(&l, &l, &g, &g, rank, &t).err().expect("an error").to_string()
    };
    assert!(local(4, 10, 0).contains("not a whole number of ranks"));
    assert!(local(4, 8, 2).contains("rank 2 is out of range"));
}

/// The scale of the tape's op: the loss is one node whatever B is.
#[test]
fn the_loss_is_one_tape_node() {
    let tape = Tape::new();
    let image = tape.input(randn(&[3, 2], DType::F32, 70));
    let text = tape.input(randn(&[3, 2], DType::F32, 71));
    let t = Var::constant(Tensor::scalar(T_INIT, DType::F32, &Device::Cpu).unwrap());
    let before = tape.len();
    let loss = clip_loss(&image, &text, &t).unwrap();
    assert_eq!(tape.len(), before + 1);
    let grads = loss.backward().unwrap();
    assert!(grads.get(&image).is_some() && grads.get(&t).is_none());
}
