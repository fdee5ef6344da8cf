//! The MLP epilogue kernels (kernels/mlp.cu) on the device under test against
//! the CPU path, f32 and bf16, forward and backward, odd sizes, and whole
//! layers (with their GEMMs) forward and backward; device outputs are
//! NaN-poisoned when allocated.

use reclip_autograd::Tape;
use reclip_core::DType;
use reclip_mlp::{Activation, bias_act_backward, bias_act_forward, bias_grad, linear, mlp};
use reclip_testkit::{Tolerance, compare_with_cpu, compare_with_cpu_tol, randn};

const DTYPES: [DType; 2] = [DType::F32, DType::BF16];
const ACTS: [Activation; 2] = [Activation::Gelu, Activation::QuickGelu];

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
        // The GEMMs sum in another order (and in TF32 for f32 on a GPU).
        let tol = Some(if dtype == DType::F32 { Tolerance::new(2e-3, 2e-3) } else { Tolerance::for_dtype(dtype) });
        let (x, w1, b1) = (randn(&[3, 5, 72], dtype, 4), randn(&[96, 72], dtype, 5), randn(&[96], dtype, 6));
        let (w2, b2, g) = (randn(&[72, 96], dtype, 7), randn(&[72], dtype, 8), randn(&[3, 5, 72], dtype, 9));
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
        compare_with_cpu_tol(&format!("linear without bias {dtype}"), &[&x, &w2.transpose(0, 1).unwrap()], tol, |t| {
            let tape = Tape::new();
            let (xv, wv) = (tape.input(t[0].clone()), tape.input(t[1].contiguous()?));
            let y = linear(&xv, &wv, None)?;
            let grads = y.sum_all()?.backward()?;
            Ok(vec![
                y.tensor().clone(),
                grads.get(&xv).expect("tracked").clone(),
                grads.get(&wv).expect("tracked").clone(),
            ])
        });
    }
}
