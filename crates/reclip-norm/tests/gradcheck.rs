//! LayerNorm's gradients against finite differences (f64, CPU), its forward
//! pass against the formula, and its errors on bad input.

use reclip_autograd::Var;
use reclip_autograd::gradcheck::gradcheck;
use reclip_core::{DType, Device, Tensor, rng};
use reclip_norm::{add_layer_norm, layer_norm, layer_norm_forward};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, DType::F64, &Device::Cpu, &mut rng(seed)).unwrap()
}

#[test]
fn forward_matches_the_formula() {
    // Rows with a large offset: the variance must not cancel.
    let x = randn(&[4, 9], 1).add_scalar(1000.0).unwrap();
    let (gamma, beta) = (randn(&[9], 2), randn(&[9], 3));
    let out = layer_norm_forward(&x, &gamma, &beta, 1e-5).unwrap();
    let (xv, g, b) = (x.to_vec_f64().unwrap(), gamma.to_vec_f64().unwrap(), beta.to_vec_f64().unwrap());
    let (y, mean, rstd) = (out.y.to_vec_f64().unwrap(), out.mean.to_vec_f64().unwrap(), out.rstd.to_vec_f64().unwrap());
    for r in 0..4 {
        let row = &xv[r * 9..][..9];
        let mu = row.iter().sum::<f64>() / 9.0;
        let var = row.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / 9.0;
        assert!((mean[r] - mu).abs() < 1e-12 && (rstd[r] - 1.0 / (var + 1e-5).sqrt()).abs() < 1e-9);
        for j in 0..9 {
            let want = (row[j] - mu) / (var + 1e-5).sqrt() * g[j] + b[j];
            assert!((y[r * 9 + j] - want).abs() < 1e-9, "{} vs {want}", y[r * 9 + j]);
        }
    }
    assert_eq!(out.mean.dtype(), DType::F64);
    let bf = layer_norm_forward(
        &x.to_dtype(DType::BF16).unwrap(),
        &gamma.to_dtype(DType::BF16).unwrap(),
        &beta.to_dtype(DType::BF16).unwrap(),
        1e-5,
    )
    .unwrap();
    assert_eq!((bf.y.dtype(), bf.mean.dtype()), (DType::BF16, DType::F32));
}

#[test]
fn layer_norm_gradients() {
    for dims in [&[3, 7][..], &[2, 3, 5][..]] {
        let d = *dims.last().unwrap();
        let (x, gamma, beta) = (randn(dims, 4), randn(&[d], 5), randn(&[d], 6));
        gradcheck(|v| layer_norm(&v[0], &v[1], &v[2], 1e-5), &[&x, &gamma, &beta]).unwrap();
    }
}

#[test]
fn add_layer_norm_gradients_and_values() {
    let (x, h, gamma, beta) = (randn(&[3, 7], 7), randn(&[3, 7], 8), randn(&[7], 9), randn(&[7], 10));
    gradcheck(
        |v| {
            let (r, y) = add_layer_norm(&v[0], &v[1], &v[2], &v[3], 1e-5)?;
            Var::concat(&[&r, &y], 0)
        },
        &[&x, &h, &gamma, &beta],
    )
    .unwrap();
    let (r, y) = add_layer_norm(
        &Var::constant(x.clone()),
        &Var::constant(h.clone()),
        &Var::constant(gamma.clone()),
        &Var::constant(beta.clone()),
        1e-5,
    )
    .unwrap();
    let sum = x.add(&h).unwrap();
    assert_eq!(r.tensor().to_vec_f64().unwrap(), sum.to_vec_f64().unwrap());
    let want = layer_norm_forward(&sum, &gamma, &beta, 1e-5).unwrap().y;
    assert_eq!(y.tensor().to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
}

#[test]
fn rejects_bad_shapes_and_eps() {
    let c = |t: Tensor| Var::constant(t);
    let x = randn(&[3, 7], 1);
    let err = layer_norm(&c(x.clone()), &c(randn(&[6], 2)), &c(randn(&[7], 3)), 1e-5).unwrap_err().to_string();
    assert!(err.contains("gamma must be [7]"), "{err}");
    let err = layer_norm(&c(x.clone()), &c(randn(&[7], 2)), &c(randn(&[7, 1], 3)), 1e-5).unwrap_err().to_string();
    assert!(err.contains("beta must be [7]"), "{err}");
    let err = layer_norm(&c(x.clone()), &c(randn(&[7], 2)), &c(randn(&[7], 3)), -1.0).unwrap_err().to_string();
    assert!(err.contains("eps must be finite and non-negative"), "{err}");
    let err = add_layer_norm(&c(x.clone()), &c(randn(&[7], 4)), &c(randn(&[7], 2)), &c(randn(&[7], 3)), 1e-5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("add_layer_norm"), "{err}");
    let f32x = x.to_dtype(DType::F32).unwrap();
    assert!(layer_norm(&c(f32x), &c(randn(&[7], 2)), &c(randn(&[7], 3)), 1e-5).is_err());
}
