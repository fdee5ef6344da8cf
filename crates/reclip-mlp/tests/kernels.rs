//! The MLP epilogue kernels (kernels/mlp.cu) on the device under test against
//! the CPU path, f32 and bf16, forward and backward, odd sizes, and whole
//! layers (with their GEMMs) forward and backward; device outputs are
//! NaN-poisoned when allocated.

use reclip_autograd::Tape;
use reclip_core::{DType, Tensor};
use reclip_mlp::{Activation, bias_act_backward, bias_act_forward, bias_grad, linear, mlp};
use reclip_testkit::{Tolerance, compare_with_cpu, compare_with_cpu_tol, randn};

const DTYPES: [DType; 2] = [DType::F32, DType::BF16];
const ACTS: [Activation; 2] = [Activation::Gelu, Activation::QuickGelu];

/// Normal values of standard deviation `std`.
fn scaled(dims: &[usize], std: f64, dtype: DType, seed: u64) -> Tensor {
    randn(dims, dtype, seed).affine(std, 0.0).unwrap()
}

#[test]
fn epilogues_forward_and_backward() {
    // 21 rows in three chunks of seven; 72 and 33 columns (partial column tiles).
    for dims in [&[3, 7, 72][..], &[21, 33][..]] {
        let cols = *dims.last().unwrap();
        for dtype in DTYPES {
            let (z, b, dy) = (randn(dims, dtype, 1), randn(&[cols], dtype, 2), randn(dims, dtype, 3));
            for act in ACTS {
                compare_with_cpu(&format!("bias+{act:?} {dims:?} {dtype}"), &[&z, &b, &dy], |t| {
                    let y = bias_act_forward(&t[0], &t[1], Some(act))?;
                    let (du, db) = bias_act_backward(&t[2], &t[0], &t[1], act)?;
                    Ok(vec![y, du, db])
                });
            }
            compare_with_cpu(&format!("bias {dims:?} {dtype}"), &[&z, &b, &dy], |t| {
                Ok(vec![bias_act_forward(&t[0], &t[1], None)?, bias_grad(&t[2])?])
            });
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
        let tol = Some(if dtype == DType::F32 { Tolerance::new(2e-3, 2e-3) } else { Tolerance::for_dtype(dtype) });
        let x = randn(&[3, 5, 72], dtype, 4);
        let (w1, b1) = (scaled(&[96, 72], 72f64.sqrt().recip(), dtype, 5), randn(&[96], dtype, 6));
        let (w2, b2) = (scaled(&[72, 96], 96f64.sqrt().recip(), dtype, 7), randn(&[72], dtype, 8));
        // The weights' gradients sum over the 15 rows.
        let g = scaled(&[3, 5, 72], 15f64.sqrt().recip(), dtype, 9);
        for act in ACTS {
            compare_with_cpu_tol(&format!("mlp {act:?} {dtype}"), &[&x, &w1, &b1, &w2, &b2, &g], tol, |t| {
                let tape = Tape::new();
                let v: Vec<_> = t[..5].iter().map(|t| tape.input(t.clone())).collect();
                let y = mlp(&v[0], &v[1], &v[2], &v[3], &v[4], act)?;
                let grads = y.backward_with(t[5].clone())?;
                let mut out = vec![y.tensor().clone()];
                out.extend(v.iter().map(|v| grads.get(v).expect("tracked").clone()));
                Ok(out)
            });
        }
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
