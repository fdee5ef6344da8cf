//! The LayerNorm kernels (kernels/layer_norm.cu) on the device under test
//! against the CPU path, f32 and bf16, forward and backward, odd sizes;
//! device outputs are NaN-poisoned when allocated. Each case also checks
//! which form ran: the vector form (16-byte loads) where rows are whole
//! 16-byte packs and every tensor is 16-byte aligned, the scalar form
//! elsewhere.

use reclip_core::{DType, Tensor};
use reclip_norm::{add_layer_norm_forward, layer_norm_backward, layer_norm_forward};
use reclip_testkit::{assert_forms, compare_with_cpu_kernels, misaligned, randn};

const DTYPES: [DType; 2] = [DType::F32, DType::BF16];

/// LayerNorm forward and backward, and the fused residual add, of x [dims]
/// against the CPU, checking that all three ran in the vector form or all in
/// the scalar form; with `misalign`, x, h and dy are [`misaligned`] views.
fn check(dims: &[usize], dtype: DType, misalign: bool, vector: bool) {
    let d = *dims.last().unwrap();
    // Rows offset from zero, as in a residual stream.
    let x = randn(dims, dtype, 1).affine(3.0, 5.0).unwrap();
    let (gamma, beta, dy, h) =
        (randn(&[d], dtype, 2), randn(&[d], dtype, 3), randn(dims, dtype, 4), randn(dims, dtype, 5));
    let what = format!("layer_norm {dims:?} {dtype}{}", if misalign { " misaligned" } else { "" });
    let kernels = compare_with_cpu_kernels(&what, &[&x, &gamma, &beta, &dy, &h], None, |t| {
        let view = |t: &Tensor| if misalign { misaligned(t) } else { Ok(t.clone()) };
        let (x, dy, h) = (view(&t[0])?, view(&t[3])?, view(&t[4])?);
        let out = layer_norm_forward(&x, &t[1], &t[2], 1e-5)?;
        let grads = layer_norm_backward(&dy, &x, &t[1], &out.mean, &out.rstd)?;
        let (r, fused) = add_layer_norm_forward(&x, &h, &t[1], &t[2], 1e-5)?;
        Ok(vec![out.y, out.mean, out.rstd, grads.x, grads.gamma, grads.beta, r, fused.y, fused.mean, fused.rstd])
    });
    assert_forms(&what, &kernels, &["layer_norm_fwd", "add_layer_norm_fwd", "layer_norm_bwd"], dtype, vector);
}

#[test]
fn forward_and_backward_at_odd_sizes() {
    // A partial last block; a width of one; rows wider than 2048 (and not
    // whole packs).
    for dims in [&[5, 1][..], &[5, 2050][..]] {
        for dtype in DTYPES {
            check(dims, dtype, false, false);
        }
    }
}

#[test]
fn vector_forms_at_widths_of_whole_packs() {
    // Widths of 8, 9 and 17 packs of bf16 (16, 18 and 34 of f32), with a
    // partial last block; 136 leaves most lanes one pack and some two.
    for dims in [&[3, 7, 64][..], &[3, 5, 72][..], &[11, 136][..]] {
        for dtype in DTYPES {
            check(dims, dtype, false, true);
        }
    }
}

#[test]
fn scalar_forms_for_partial_packs_and_misaligned_rows() {
    // 68 is 17 packs of f32 but 8.5 of bf16.
    check(&[4, 68], DType::F32, false, true);
    check(&[4, 68], DType::BF16, false, false);
    for dtype in DTYPES {
        check(&[3, 5, 72], dtype, true, false);
    }
}

#[test]
fn backward_with_several_rows_per_warp() {
    // More rows than the backward's 1024 blocks × 4 warps: warps loop over
    // rows, adding each row into their accumulators; width 3 in the scalar
    // form, 4 (one pack) in the vector form. f32 only: the loop does not
    // depend on the dtype, and the emulator's shuffles are slow.
    for d in [3, 4] {
        let dims = [4133, d];
        let (x, gamma, beta, dy) = (
            randn(&dims, DType::F32, 9),
            randn(&[d], DType::F32, 10),
            randn(&[d], DType::F32, 11),
            randn(&dims, DType::F32, 12),
        );
        let what = format!("layer_norm backward {dims:?} f32");
        let kernels = compare_with_cpu_kernels(&what, &[&x, &gamma, &beta, &dy], None, |t| {
            let out = layer_norm_forward(&t[0], &t[1], &t[2], 1e-5)?;
            let grads = layer_norm_backward(&t[3], &t[0], &t[1], &out.mean, &out.rstd)?;
            Ok(vec![grads.x, grads.gamma, grads.beta])
        });
        assert_forms(&what, &kernels, &["layer_norm_bwd"], DType::F32, d == 4);
    }
}
