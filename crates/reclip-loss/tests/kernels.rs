//! The loss's kernels (forward and backward, f32 and bf16) on the device
//! under test against the CPU path: the single-rank loss at B ∈ {1, 7, 257,
//! 1024}, d ∈ {16, 64, 100}, an embedding wide enough for two column splits
//! of the backward kernel, the distributed form, a clamped scale, and
//! reproducibility across the emulator's thread orders. The feature
//! (de)normalisation runs in its vector form (16-byte loads) where rows are
//! whole 16-byte packs and aligned, in its scalar form elsewhere (bf16 at
//! d = 100, misaligned views); each case checks which ran.

use reclip_core::{DType, Device, Result, Tensor};
use reclip_loss::{clip_loss_backward, clip_loss_forward, clip_loss_local_backward, clip_loss_local_forward};
use reclip_testkit::{Tolerance, assert_forms, compare_with_cpu_kernels, compare_with_cpu_tol, misaligned, randn};

const DTYPES: [DType; 2] = [DType::F32, DType::BF16];

fn scalar(v: f64) -> Tensor {
    Tensor::scalar(v, DType::F32, &Device::Cpu).unwrap()
}

/// Loss, d(image), d(text), d(t), for inputs [image, text, t, upstream gradient].
fn forward_backward(x: &[Tensor]) -> Result<Vec<Tensor>> {
    let (loss, saved) = clip_loss_forward(&x[0], &x[1], &x[2])?;
    let g = clip_loss_backward(&saved, &x[3])?;
    Ok(vec![loss, g.image, g.text, g.log_scale])
}

/// The two paths sum in different orders: gradient elements (sums of B
/// terms of either sign) are compared on the scale of the largest one.
fn tolerance(dtype: DType, image: &Tensor, text: &Tensor, t: &Tensor) -> Tolerance {
    let (_, saved) = clip_loss_forward(image, text, t).unwrap();
    let g = clip_loss_backward(&saved, &scalar(1.0)).unwrap();
    let largest = [g.image, g.text].iter().flat_map(|t| t.to_vec_f64().unwrap()).fold(0.0f64, |m, v| m.max(v.abs()));
    match dtype {
        DType::BF16 => Tolerance::new(1.6e-2, 1e-2 * largest),
        _ => Tolerance::new(1e-4, 1e-5 * largest),
    }
}

fn check_single_rank(b: usize, d: usize, dtype: DType, t: f64, upstream: f64) {
    check_features(b, d, dtype, t, upstream, false);
}

/// The single-rank loss against the CPU; with `misalign`, the features are
/// [`misaligned`] views. Checks which form of the (de)normalisation ran.
fn check_features(b: usize, d: usize, dtype: DType, t: f64, upstream: f64, misalign: bool) {
    let image = randn(&[b, d], dtype, (b * 1000 + d) as u64);
    let text = randn(&[b, d], dtype, (b * 1000 + d + 1) as u64);
    let (t, g) = (scalar(t), scalar(upstream));
    let tol = tolerance(dtype, &image, &text, &t);
    let what = format!("clip_loss B={b} d={d} {dtype}{}", if misalign { " misaligned" } else { "" });
    let kernels = compare_with_cpu_kernels(&what, &[&image, &text, &t, &g], Some(tol), |x| {
        let view = |t: &Tensor| if misalign { misaligned(t) } else { Ok(t.clone()) };
        forward_backward(&[view(&x[0])?, view(&x[1])?, x[2].clone(), x[3].clone()])
    });
    let whole_packs = d.is_multiple_of(16 / dtype.size_in_bytes());
    assert_forms(&what, &kernels, &["clip_normalize"], dtype, whole_packs && !misalign);
    // The backward reads the saved normalised features, its own allocation.
    assert_forms(&what, &kernels, &["clip_denormalize"], dtype, whole_packs);
}

#[test]
fn small_batches() {
    for dtype in DTYPES {
        for b in [1, 7] {
            for d in [16, 64, 100] {
                check_single_rank(b, d, dtype, 2.66, 1.0);
            }
        }
    }
}

#[test]
fn batch_257() {
    for dtype in DTYPES {
        for d in [16, 64, 100] {
            check_single_rank(257, d, dtype, 2.66, 0.75);
        }
    }
}

#[test]
fn batch_1024() {
    for dtype in DTYPES {
        for d in [16, 64, 100] {
            check_single_rank(1024, d, dtype, 4.0, 1.0);
        }
    }
}

#[test]
fn two_column_splits_and_a_clamped_scale() {
    // d = 600 > 512: the backward kernel splits the columns (2 × 300).
    check_single_rank(9, 600, DType::F32, 2.66, 1.0);
    // exp(5) > 100: the scale is clamped, d(t) must come out 0; at the
    // clamp's boundary itself t still takes a gradient.
    check_single_rank(33, 20, DType::F32, 5.0, 1.0);
    check_single_rank(33, 20, DType::F32, f64::from(reclip_loss::MAX_LOG_SCALE), 1.0);
}

#[test]
fn misaligned_features_take_the_scalar_forms() {
    for dtype in DTYPES {
        check_features(7, 64, dtype, 2.66, 1.0, true);
    }
}

#[test]
fn distributed_form() {
    for dtype in DTYPES {
        let (world, b, d) = (3, 70, 24);
        let gi = randn(&[world * b, d], dtype, 1);
        let gt = randn(&[world * b, d], dtype, 2);
        let t = scalar(3.0);
        let one = scalar(1.0);
        let tol = tolerance(dtype, &gi, &gt, &t);
        for rank in [0, 2] {
            let li = gi.narrow(0, rank * b, b).unwrap().contiguous().unwrap();
            let lt = gt.narrow(0, rank * b, b).unwrap().contiguous().unwrap();
            compare_with_cpu_tol(
                &format!("clip_loss_local rank {rank} {dtype}"),
                &[&li, &lt, &gi, &gt, &t, &one],
                Some(tol),
                |x| {
                    let (loss, saved) = clip_loss_local_forward(&x[0], &x[1], &x[2], &x[3], rank, &x[4])?;
                    let g = clip_loss_local_backward(&saved, &x[5])?;
                    Ok(vec![loss, g.local_image, g.local_text, g.gathered_image, g.gathered_text, g.log_scale])
                },
            );
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_order() {
    if std::env::var("RECLIP_TEST_DEVICE").is_ok_and(|v| v == "cuda") {
        // One GPU run against another: same launches, same order of sums.
        let device = reclip_testkit::test_device();
        let outputs = |_: u64| run_on(&device);
        assert_bitwise_equal(&outputs(0), &outputs(1));
    } else {
        let outputs = |seed: u64| run_on(&reclip_emu::Emulator::device(seed));
        assert_bitwise_equal(&outputs(1), &outputs(2));
    }
}

fn run_on(device: &Device) -> Vec<Vec<f32>> {
    let inputs = [randn(&[70, 36], DType::F32, 5), randn(&[70, 36], DType::F32, 6), scalar(2.66), scalar(1.0)];
    let on_device: Vec<Tensor> = inputs.iter().map(|t| t.to_device(device).unwrap()).collect();
    forward_backward(&on_device).unwrap().iter().map(|t| t.to_vec_f32().unwrap()).collect()
}

fn assert_bitwise_equal(a: &[Vec<f32>], b: &[Vec<f32>]) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()), "output {i} differs between runs");
    }
}
