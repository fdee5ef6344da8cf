//! The LayerNorm kernels (kernels/layer_norm.cu) on the device under test
//! against the CPU path, f32 and bf16, forward and backward, odd sizes;
//! device outputs are NaN-poisoned when allocated.

use reclip_core::DType;
use reclip_norm::{add_layer_norm_forward, layer_norm_backward, layer_norm_forward};
use reclip_testkit::{compare_with_cpu, randn};

const DTYPES: [DType; 2] = [DType::F32, DType::BF16];

#[test]
fn forward_and_backward_at_odd_sizes() {
    // A partial last block; a width of one; rows wider than 2048.
    for dims in [&[3, 7, 72][..], &[5, 1][..], &[5, 2050][..]] {
        let d = *dims.last().unwrap();
        for dtype in DTYPES {
            let (x, gamma, beta, dy) =
                (randn(dims, dtype, 1), randn(&[d], dtype, 2), randn(&[d], dtype, 3), randn(dims, dtype, 4));
            // Rows offset from zero, as in a residual stream.
            let x = x.affine(3.0, 5.0).unwrap();
            compare_with_cpu(&format!("layer_norm {dims:?} {dtype}"), &[&x, &gamma, &beta, &dy], |t| {
                let out = layer_norm_forward(&t[0], &t[1], &t[2], 1e-5)?;
                let grads = layer_norm_backward(&t[3], &t[0], &t[1], &out.mean, &out.rstd)?;
                Ok(vec![out.y, out.mean, out.rstd, grads.x, grads.gamma, grads.beta])
            });
        }
    }
}

#[test]
fn fused_residual_add() {
    for dtype in DTYPES {
        let (x, h, gamma, beta) = (
            randn(&[3, 5, 72], dtype, 5),
            randn(&[3, 5, 72], dtype, 6),
            randn(&[72], dtype, 7),
            randn(&[72], dtype, 8),
        );
        compare_with_cpu(&format!("add_layer_norm {dtype}"), &[&x, &h, &gamma, &beta], |t| {
            let (r, out) = add_layer_norm_forward(&t[0], &t[1], &t[2], &t[3], 1e-5)?;
            Ok(vec![r, out.y, out.mean, out.rstd])
        });
    }
}

#[test]
fn backward_with_several_rows_per_warp() {
    // More rows than the backward's 1024 blocks × 4 warps: warps loop over rows.
    // f32 only: the loop does not depend on the dtype, and the emulator's shuffles are slow.
    let dims = [4133, 3];
    let (x, gamma, beta, dy) = (
        randn(&dims, DType::F32, 9),
        randn(&[3], DType::F32, 10),
        randn(&[3], DType::F32, 11),
        randn(&dims, DType::F32, 12),
    );
    compare_with_cpu("layer_norm backward [4133, 3] f32", &[&x, &gamma, &beta, &dy], |t| {
        let out = layer_norm_forward(&t[0], &t[1], &t[2], 1e-5)?;
        let grads = layer_norm_backward(&t[3], &t[0], &t[1], &out.mean, &out.rstd)?;
        Ok(vec![grads.x, grads.gamma, grads.beta])
    });
}
