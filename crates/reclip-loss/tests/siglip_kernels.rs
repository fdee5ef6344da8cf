//! SigLIP's kernels (kernels/siglip_loss.cu, forward and backward, f32 and
//! bf16 features) on the device under test against the CPU path: batches
//! of 1 to 257 rows (partial row blocks and column tiles), an embedding wide
//! enough for two column splits of the backward kernel, a rectangular block
//! of negatives (the distributed form), a clamped scale, and the same bits
//! for two of the emulator's thread orders. Device outputs are NaN-poisoned
//! when allocated.

use reclip_core::{DType, Device, Result, Tensor};
use reclip_loss::{MAX_LOG_SCALE, siglip_loss_backward, siglip_loss_forward, siglip_loss_negatives_forward};
use reclip_testkit::{Tolerance, compare_with_cpu_tol, randn};

fn scalar(v: f64) -> Tensor {
    Tensor::scalar(v, DType::F32, &Device::Cpu).unwrap()
}

/// Loss, d(image), d(text), d(t), d(bias), for inputs [image, text, t, bias,
/// upstream gradient].
fn forward_backward(x: &[Tensor], diagonal: bool) -> Result<Vec<Tensor>> {
    let forward = if diagonal { siglip_loss_forward } else { siglip_loss_negatives_forward };
    let (loss, saved) = forward(&x[0], &x[1], &x[2], &x[3])?;
    let g = siglip_loss_backward(&saved, &x[4])?;
    Ok(vec![loss, g.image, g.text, g.log_scale, g.bias])
}

/// The two paths sum in different orders: gradient elements (sums of terms
/// of either sign) are compared on the scale of the largest one.
fn tolerance(dtype: DType, x: &[Tensor], diagonal: bool) -> Tolerance {
    let out = forward_backward(x, diagonal).unwrap();
    let largest = out[1..3].iter().flat_map(|t| t.to_vec_f64().unwrap()).fold(0.0f64, |m, v| m.max(v.abs()));
    match dtype {
        DType::BF16 => Tolerance::new(1.6e-2, 1e-2 * largest),
        _ => Tolerance::new(1e-4, 1e-5 * largest),
    }
}

fn check(m: usize, n: usize, d: usize, dtype: DType, t: f64, diagonal: bool) {
    let image = randn(&[m, d], dtype, (m * 1000 + d) as u64);
    let text = randn(&[n, d], dtype, (n * 1000 + d + 1) as u64);
    let inputs = [image, text, scalar(t), scalar(-5.0), scalar(0.75)];
    let tol = tolerance(dtype, &inputs, diagonal);
    let what = format!("siglip m={m} n={n} d={d} t={t} {dtype}{}", if diagonal { "" } else { " negatives" });
    let refs: Vec<&Tensor> = inputs.iter().collect();
    compare_with_cpu_tol(&what, &refs, Some(tol), |x| forward_backward(x, diagonal));
}

#[test]
fn batches_of_one_to_seventy() {
    for dtype in [DType::F32, DType::BF16] {
        for b in [1, 7, 70] {
            for d in [16, 100] {
                check(b, b, d, dtype, 2.3, true);
            }
        }
    }
}

#[test]
fn batch_257_and_a_block_of_negatives() {
    for dtype in [DType::F32, DType::BF16] {
        check(257, 257, 64, dtype, 2.3, true);
        check(70, 130, 24, dtype, 2.3, false);
    }
}

#[test]
fn two_column_splits_and_a_clamped_scale() {
    // d = 600 > 512: the backward kernel splits the columns (2 × 300).
    check(9, 9, 600, DType::F32, 2.3, true);
    // exp(5) > 100: t takes no gradient; at the clamp's boundary it does.
    check(33, 33, 20, DType::F32, 5.0, true);
    check(33, 33, 20, DType::F32, f64::from(MAX_LOG_SCALE), true);
}

#[test]
fn results_do_not_depend_on_the_thread_order() {
    let run = |device: &Device| -> Vec<Vec<f32>> {
        let inputs =
            [randn(&[70, 36], DType::F32, 5), randn(&[70, 36], DType::F32, 6), scalar(2.3), scalar(-5.0), scalar(1.0)];
        let on: Vec<Tensor> = inputs.iter().map(|t| t.to_device(device).unwrap()).collect();
        forward_backward(&on, true).unwrap().iter().map(|t| t.to_vec_f32().unwrap()).collect()
    };
    let (a, b) = if std::env::var("RECLIP_TEST_DEVICE").is_ok_and(|v| v == "cuda") {
        let device = reclip_testkit::test_device();
        (run(&device), run(&device))
    } else {
        (run(&reclip_emu::Emulator::device(1)), run(&reclip_emu::Emulator::device(2)))
    };
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()), "output {i} differs between runs");
    }
}
