//! The MLP's kernels (kernels/mlp.cu) on the device under test against the
//! CPU path, f32 and bf16, forward and backward, odd sizes, in their vector
//! and scalar forms, and whole layers (with their GEMMs, and the GEMM
//! epilogues of the linear layers: bias, bias gradient, GELU's tanh
//! approximation) forward and backward; device outputs are NaN-poisoned when
//! allocated.

use reclip_autograd::{Tape, Var};
use reclip_core::{DType, Tensor};
use reclip_mlp::{Activation, activation_backward, activation_forward, bias_grad, linear, mlp};
use reclip_testkit::{
    Tolerance, assert_forms, compare_with_cpu, compare_with_cpu_kernels, compare_with_cpu_tol, misaligned, randn,
};

const DTYPES: [DType; 2] = [DType::F32, DType::BF16];
const ACTS: [Activation; 3] = [Activation::Gelu, Activation::GeluTanh, Activation::QuickGelu];

/// Normal values of standard deviation `std`.
fn scaled(dims: &[usize], std: f64, dtype: DType, seed: u64) -> Tensor {
    randn(dims, dtype, seed).affine(std, 0.0).unwrap()
}

#[test]
fn activations_forward_and_backward() {
    // 1512 elements (whole packs of both dtypes), 693 (neither), and 1512 as
    // a misaligned view; the bias gradient's column tiles are partial at 72
    // and 33 columns.
    for (dims, misalign, vector) in
        [(&[3, 7, 72][..], false, true), (&[21, 33][..], false, false), (&[3, 7, 72][..], true, false)]
    {
        for dtype in DTYPES {
            // Pre-activations spread over GELU's curved range and its tails.
            let (u, dh) = (randn(dims, dtype, 1).affine(3.0, 0.0).unwrap(), randn(dims, dtype, 3));
            for act in ACTS {
                let what = format!("{act:?} {dims:?} {dtype}{}", if misalign { " misaligned" } else { "" });
                let kernels = compare_with_cpu_kernels(&what, &[&u, &dh], None, |t| {
                    let view = |t: &Tensor| if misalign { misaligned(t) } else { Ok(t.clone()) };
                    let (u, dh) = (view(&t[0])?, view(&t[1])?);
                    Ok(vec![activation_forward(&u, act)?, activation_backward(&dh, &u, act)?])
                });
                assert_forms(&what, &kernels, &["act_fwd", "act_bwd"], dtype, vector);
            }
            compare_with_cpu(&format!("bias gradient {dims:?} {dtype}"), &[&dh], |t| Ok(vec![bias_grad(&t[0])?]));
        }
    }
}

#[test]
fn mlp_layers_forward_and_backward() {
    for dtype in DTYPES {
        // The GEMMs sum in another order, and f32 runs as TF32 on a GPU, which
        // rounds the operands to 10 mantissa bits. Inputs are scaled as trained
        // weights are, so that each product's terms are about 1/√k of its O(1)
        // result and TF32's error stays well inside the tolerance.
        let tol = layer_tolerance(dtype);
        let x = randn(&[3, 5, 72], dtype, 4);
        let (w1, b1) = (scaled(&[96, 72], 72f64.sqrt().recip(), dtype, 5), randn(&[96], dtype, 6));
        let (w2, b2) = (scaled(&[72, 96], 96f64.sqrt().recip(), dtype, 7), randn(&[72], dtype, 8));
        // The weights' gradients sum over the 15 rows.
        let g = scaled(&[3, 5, 72], 15f64.sqrt().recip(), dtype, 9);
        for act in ACTS {
            let what = format!("mlp {act:?} {dtype}");
            let kernels =
                compare_with_cpu_kernels(&what, &[&x, &w1, &b1, &w2, &b2, &g], tol, |t| mlp_with_grads_of(t, act));
            // GELU's tanh approximation rides in the GEMMs' epilogues; the
            // others take the activation kernels between them.
            let fused = act == Activation::GeluTanh;
            assert_eq!(!fused, kernels.iter().any(|k| k.starts_with("act_")), "{what}: launched {kernels:?}");
        }
        // A hidden width that is not a multiple of 8 (cuBLASLt's ld for the
        // saved pre-activation) takes the kernels for the tanh approximation too.
        let (w1, b1) = (scaled(&[36, 72], 72f64.sqrt().recip(), dtype, 5), randn(&[36], dtype, 6));
        let w2 = scaled(&[72, 36], 36f64.sqrt().recip(), dtype, 7);
        let what = format!("mlp GeluTanh, hidden 36, {dtype}");
        let kernels = compare_with_cpu_kernels(&what, &[&x, &w1, &b1, &w2, &b2, &g], tol, |t| {
            mlp_with_grads_of(t, Activation::GeluTanh)
        });
        // 15 × 36 elements are whole packs of f32 (4) but not of bf16 (8).
        assert_forms(&what, &kernels, &["act_fwd", "act_bwd"], dtype, dtype == DType::F32);
        let w = scaled(&[96, 72], 72f64.sqrt().recip(), dtype, 10);
        let g = scaled(&[3, 5, 96], 15f64.sqrt().recip(), dtype, 11);
        compare_with_cpu_tol(&format!("linear without bias {dtype}"), &[&x, &w, &g], tol, |t| {
            let tape = Tape::new();
            let (xv, wv) = (tape.input(t[0].clone()), tape.input(t[1].clone()));
            let y = linear(&xv, &wv, None)?;
            let grads = y.backward_with(t[2].clone())?;
            Ok(vec![
                y.tensor().clone(),
                grads.get(&xv).expect("tracked").clone(),
                grads.get(&wv).expect("tracked").clone(),
            ])
        });
    }
}

/// y = mlp(x, w1, b1, w2, b2) with `act` and the gradients of all five
/// inputs, for the output gradient t[5].
fn mlp_with_grads_of(t: &[Tensor], act: Activation) -> reclip_core::Result<Vec<Tensor>> {
    let tape = Tape::new();
    let v: Vec<_> = t[..5].iter().map(|t| tape.input(t.clone())).collect();
    let y = mlp(&v[0], &v[1], &v[2], &v[3], &v[4], act)?;
    let grads = y.backward_with(t[5].clone())?;
    let mut out = vec![y.tensor().clone()];
    out.extend(v.iter().map(|v| grads.get(v).expect("tracked").clone()));
    Ok(out)
}

/// The tolerance of whole layers: their GEMMs sum in another order than the
/// CPU's, and f32 may run as TF32 on a GPU (see mlp_layers_forward_and_backward).
fn layer_tolerance(dtype: DType) -> Option<Tolerance> {
    Some(if dtype == DType::F32 { Tolerance::new(2e-3, 2e-3) } else { Tolerance::for_dtype(dtype) })
}

/// y = linear(x, w, b) and the gradients of the inputs in `tracked` (x, w, b
/// in order; the others are constants), for the output gradient `g`.
fn linear_with_grads(t: &[Tensor], tracked: [bool; 3]) -> reclip_core::Result<Vec<Tensor>> {
    let tape = Tape::new();
    let v: Vec<Var> = t[..3]
        .iter()
        .zip(tracked)
        .map(|(t, on)| if on { tape.input(t.clone()) } else { Var::constant(t.clone()) })
        .collect();
    let y = linear(&v[0], &v[1], Some(&v[2]))?;
    let grads = y.backward_with(t[3].clone())?;
    let mut out = vec![y.tensor().clone()];
    out.extend(v.iter().zip(tracked).filter(|(_, on)| *on).map(|(v, _)| grads.get(v).expect("tracked").clone()));
    Ok(out)
}

#[test]
fn linear_with_bias_forward_and_backward() {
    // 21 rows of 33 features into 45, and 13 rows of 70 into 9.
    for (x_dims, out) in [(&[3, 7, 33][..], 45), (&[13, 70][..], 9)] {
        let inp = *x_dims.last().unwrap();
        let rows: usize = x_dims[..x_dims.len() - 1].iter().product();
        let mut g_dims = x_dims.to_vec();
        *g_dims.last_mut().unwrap() = out;
        for dtype in DTYPES {
            let x = randn(x_dims, dtype, 12);
            let w = scaled(&[out, inp], (inp as f64).sqrt().recip(), dtype, 13);
            let b = randn(&[out], dtype, 14);
            let g = scaled(&g_dims, (rows as f64).sqrt().recip(), dtype, 15);
            // All tracked: the weight gradient's GEMM sums the bias gradient.
            // A frozen weight or bias takes the unfused paths.
            for tracked in [[true, true, true], [true, false, true], [false, true, false]] {
                let what = format!("linear {x_dims:?} -> {out}, {dtype}, tracked {tracked:?}");
                compare_with_cpu_tol(&what, &[&x, &w, &b, &g], layer_tolerance(dtype), |t| {
                    linear_with_grads(t, tracked)
                });
            }
            // A weight stored transposed: a strided view the GEMMs read as is or copy.
            let wt = scaled(&[inp, out], (inp as f64).sqrt().recip(), dtype, 16);
            compare_with_cpu_tol(
                &format!("linear {x_dims:?} -> {out}, {dtype}, transposed weight"),
                &[&x, &wt, &b, &g],
                layer_tolerance(dtype),
                |t| {
                    let mut t = t.to_vec();
                    t[1] = t[1].transpose(0, 1)?;
                    linear_with_grads(&t, [true, true, true])
                },
            );
        }
    }
}

#[test]
fn linear_with_bias_on_empty_dimensions() {
    // No input features (y is the bias, dW is empty), no rows (dW and db are
    // zero), no output features.
    for (x_dims, out) in [(&[4, 0][..], 6), (&[0, 5][..], 6), (&[4, 5][..], 0)] {
        let inp = x_dims[1];
        for dtype in DTYPES {
            let (x, w, b) = (randn(x_dims, dtype, 17), randn(&[out, inp], dtype, 18), randn(&[out], dtype, 19));
            let g = randn(&[x_dims[0], out], dtype, 20);
            compare_with_cpu(&format!("linear {x_dims:?} -> {out}, {dtype}"), &[&x, &w, &b, &g], |t| {
                linear_with_grads(t, [true, true, true])
            });
        }
    }
}
