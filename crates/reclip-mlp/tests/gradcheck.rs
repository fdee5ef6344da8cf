//! The MLP layers' gradients against finite differences (f64, CPU), the
//! activations against tabulated values, and errors on bad shapes.

use reclip_autograd::Var;
use reclip_autograd::gradcheck::gradcheck;
use reclip_core::{DType, Device, Tensor, rng};
use reclip_mlp::{Activation, activation_forward, linear, mlp};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, DType::F64, &Device::Cpu, &mut rng(seed)).unwrap()
}

#[test]
fn activations_match_tabulated_values() {
    // Φ, the standard normal CDF, at -1, 0.5, 1 and 2 (from tables, to 16 digits).
    let phi =
        [(-1.0, 0.15865525393145707), (0.5, 0.6914624612740131), (1.0, 0.8413447460685429), (2.0, 0.9772498680518208)];
    let u: Vec<f64> = phi.iter().map(|p| p.0).collect();
    let z = Tensor::from_vec(u.clone(), [1, 4], &Device::Cpu).unwrap();
    let gelu = activation_forward(&z, Activation::Gelu).unwrap().to_vec_f64().unwrap();
    for (g, (x, cdf)) in gelu.iter().zip(phi) {
        assert!((g - x * cdf).abs() < 1e-15, "gelu({x}) = {g}");
    }
    let quick = activation_forward(&z, Activation::QuickGelu).unwrap().to_vec_f64().unwrap();
    for (q, x) in quick.iter().zip(&u) {
        assert!((q - x / (1.0 + (-1.702 * x).exp())).abs() < 1e-15, "quick_gelu({x}) = {q}");
    }
    // ½x(1 + tanh(√(2/π)(x + 0.044715x³))) at the same points, from its definition (Python, f64).
    let tanh = [-0.15880800939172324, 0.34571400982514394, 0.8411919906082768, 1.954597694087775];
    let approx = activation_forward(&z, Activation::GeluTanh).unwrap().to_vec_f64().unwrap();
    for ((a, want), x) in approx.iter().zip(tanh).zip(&u) {
        assert!((a - want).abs() < 1e-14, "gelu_tanh({x}) = {a}, not {want}");
    }
}

#[test]
fn linear_matches_a_plain_product() {
    let (x, w, b) = (randn(&[2, 3, 5], 1), randn(&[4, 5], 2), randn(&[4], 3));
    let y = linear(&Var::constant(x.clone()), &Var::constant(w.clone()), Some(&Var::constant(b.clone()))).unwrap();
    assert_eq!(y.tensor().dims(), &[2, 3, 4]);
    let (xv, wv, bv, yv) =
        (x.to_vec_f64().unwrap(), w.to_vec_f64().unwrap(), b.to_vec_f64().unwrap(), y.tensor().to_vec_f64().unwrap());
    for r in 0..6 {
        for o in 0..4 {
            let want = bv[o] + (0..5).map(|i| xv[r * 5 + i] * wv[o * 5 + i]).sum::<f64>();
            assert!((yv[r * 4 + o] - want).abs() < 1e-12);
        }
    }
}

#[test]
fn linear_gradients() {
    let (x, w, b) = (randn(&[2, 3, 5], 4), randn(&[4, 5], 5), randn(&[4], 6));
    gradcheck(|v| linear(&v[0], &v[1], Some(&v[2])), &[&x, &w, &b]).unwrap();
    gradcheck(|v| linear(&v[0], &v[1], None), &[&x, &w]).unwrap();
}

#[test]
fn mlp_gradients() {
    let (x, w, b) = (randn(&[2, 3, 5], 7), randn(&[6, 5], 8), randn(&[6], 9));
    let (w2, b2) = (randn(&[4, 6], 10), randn(&[4], 11));
    for act in [Activation::Gelu, Activation::GeluTanh, Activation::QuickGelu] {
        gradcheck(|v| mlp(&v[0], &v[1], &v[2], &v[3], &v[4], act), &[&x, &w, &b, &w2, &b2]).unwrap();
    }
}

#[test]
fn rejects_mismatched_shapes() {
    let c = |t: Tensor| Var::constant(t);
    let err = linear(&c(randn(&[3, 5], 1)), &c(randn(&[4, 6], 2)), None).unwrap_err().to_string();
    assert!(err.contains("takes 6 input features") && err.contains("has 5"), "{err}");
    let (w2, b2) = (c(randn(&[5, 4], 4)), c(randn(&[5], 5)));
    let err = mlp(&c(randn(&[3, 5], 1)), &c(randn(&[4, 5], 2)), &c(randn(&[5], 3)), &w2, &b2, Activation::Gelu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bias [5] does not fit the output [3, 4]"), "{err}");
    let err = mlp(
        &c(randn(&[3, 5], 1)),
        &c(randn(&[4, 5], 2)),
        &c(randn(&[4], 3)),
        &c(randn(&[5, 3], 4)),
        &b2,
        Activation::Gelu,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("takes 3 input features") && err.contains("has 4"), "{err}");
    let err = linear(&c(randn(&[3, 5], 1)), &c(randn(&[5], 2)), None).unwrap_err().to_string();
    assert!(err.contains("weight [out, in]"), "{err}");
}
