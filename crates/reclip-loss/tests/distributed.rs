//! The distributed form on the CPU: a batch split into k simulated ranks.
//! Each rank's loss and gradients, combined as the crate documentation says
//! (mean of the losses; per rank, the local gradient plus the sum over ranks
//! of the gathered gradients' rows of that rank, over k), must equal the
//! single-rank loss and gradients of the whole batch.

use reclip_core::{DType, Device, Tensor};
use reclip_loss::{clip_loss_backward, clip_loss_forward, clip_loss_local_backward, clip_loss_local_forward};
use reclip_testkit::randn;

struct Combined {
    loss: f64,
    d_image: Vec<f64>,
    d_text: Vec<f64>,
    d_log_scale: f64,
}

fn single_rank(image: &Tensor, text: &Tensor, t: &Tensor) -> Combined {
    let (loss, saved) = clip_loss_forward(image, text, t).unwrap();
    let g = clip_loss_backward(&saved, &Tensor::ones([], loss.dtype(), &Device::Cpu).unwrap()).unwrap();
    Combined {
        loss: loss.to_scalar().unwrap(),
        d_image: g.image.to_vec_f64().unwrap(),
        d_text: g.text.to_vec_f64().unwrap(),
        d_log_scale: g.log_scale.to_scalar().unwrap(),
    }
}

fn ranks_combined(image: &Tensor, text: &Tensor, t: &Tensor, world: usize) -> Combined {
    let (n, d) = (image.dims()[0], image.dims()[1]);
    let b = n / world;
    let mut local_image = Vec::new();
    let mut local_text = Vec::new();
    let mut gathered_image = vec![0.0; n * d];
    let mut gathered_text = vec![0.0; n * d];
    let (mut loss, mut d_log_scale) = (0.0, 0.0);
    for rank in 0..world {
        let li = image.narrow(0, rank * b, b).unwrap().contiguous().unwrap();
        let lt = text.narrow(0, rank * b, b).unwrap().contiguous().unwrap();
        let (l, saved) = clip_loss_local_forward(&li, &lt, image, text, rank, t).unwrap();
        let g = clip_loss_local_backward(&saved, &Tensor::ones([], l.dtype(), &Device::Cpu).unwrap()).unwrap();
        loss += l.to_scalar().unwrap();
        d_log_scale += g.log_scale.to_scalar().unwrap();
        local_image.extend(g.local_image.to_vec_f64().unwrap());
        local_text.extend(g.local_text.to_vec_f64().unwrap());
        // The reduce-scatter: every rank's gathered gradients, summed.
        let add = |acc: &mut [f64], g: &Tensor| acc.iter_mut().zip(g.to_vec_f64().unwrap()).for_each(|(a, v)| *a += v);
        add(&mut gathered_image, &g.gathered_image);
        add(&mut gathered_text, &g.gathered_text);
    }
    let k = world as f64;
    let mean = |local: &[f64], gathered: &[f64]| local.iter().zip(gathered).map(|(a, b)| (a + b) / k).collect();
    Combined {
        loss: loss / k,
        d_image: mean(&local_image, &gathered_image),
        d_text: mean(&local_text, &gathered_text),
        d_log_scale: d_log_scale / k,
    }
}

fn assert_same(what: &str, got: &Combined, want: &Combined, rtol: f64) {
    let close = |a: f64, b: f64, scale: f64| (a - b).abs() <= rtol * (b.abs() + scale);
    assert!(close(got.loss, want.loss, 0.0), "{what}: loss {} vs {}", got.loss, want.loss);
    assert!(close(got.d_log_scale, want.d_log_scale, 1e-3), "{what}: dt {} vs {}", got.d_log_scale, want.d_log_scale);
    for (name, g, w) in [("d_image", &got.d_image, &want.d_image), ("d_text", &got.d_text, &want.d_text)] {
        let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in g.iter().zip(w.iter()).enumerate() {
            assert!(close(*a, *b, scale), "{what}: {name}[{i}] {a:.10e} vs {b:.10e}");
        }
    }
}

#[test]
fn ranks_add_up_to_the_single_rank_loss_and_gradients_in_f64() {
    let image = randn(&[12, 5], DType::F64, 1);
    let text = randn(&[12, 5], DType::F64, 2);
    let t = Tensor::scalar(3.1, DType::F64, &Device::Cpu).unwrap();
    let want = single_rank(&image, &text, &t);
    for world in [1, 2, 3, 4, 12] {
        assert_same(&format!("{world} ranks"), &ranks_combined(&image, &text, &t, world), &want, 1e-12);
    }
}

#[test]
fn ranks_add_up_in_f32_across_tile_boundaries() {
    // 300 rows in 3 ranks of 100: the local row blocks (64) and the gathered
    // column tiles (256) both end inside a rank.
    let image = randn(&[300, 16], DType::F32, 3);
    let text = randn(&[300, 16], DType::F32, 4);
    let t = Tensor::scalar(4.2, DType::F32, &Device::Cpu).unwrap();
    let want = single_rank(&image, &text, &t);
    assert_same("3 ranks, f32", &ranks_combined(&image, &text, &t, 3), &want, 1e-5);
}

#[test]
fn a_clamped_scale_gives_no_gradient_to_t_on_any_rank() {
    let image = randn(&[8, 4], DType::F64, 5);
    let text = randn(&[8, 4], DType::F64, 6);
    let t = Tensor::scalar(4.7, DType::F64, &Device::Cpu).unwrap();
    let got = ranks_combined(&image, &text, &t, 2);
    assert_eq!(got.d_log_scale, 0.0);
    assert_same("clamped", &got, &single_rank(&image, &text, &t), 1e-12);
}
