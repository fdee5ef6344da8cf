//! The embedding kernels (kernels/embed.cu) on the device under test against
//! the CPU path, f32 and bf16, forward and backward, odd sizes; device
//! outputs are NaN-poisoned when allocated.

use reclip_core::{DType, Device, Indices, Tensor};
use reclip_embed::{TokenShape, patch_embed_backward, patch_embed_forward, token_embed_backward, token_embed_forward};
use reclip_testkit::{Tolerance, compare_with_cpu, compare_with_cpu_tol, randn};

const DTYPES: [DType; 2] = [DType::F32, DType::BF16];

/// GEMM outputs: summation order differs, and f32 runs as TF32 on a GPU,
/// which rounds the operands to 10 mantissa bits. The inputs below are
/// scaled as trained weights are, so that each product's terms are about
/// 1/√k of its O(1) result and TF32's error stays well inside the tolerance.
fn gemm_tol(dtype: DType) -> Option<Tolerance> {
    Some(if dtype == DType::F32 { Tolerance::new(2e-3, 2e-3) } else { Tolerance::for_dtype(dtype) })
}

/// Normal values of standard deviation `std`.
fn scaled(dims: &[usize], std: f64, dtype: DType, seed: u64) -> Tensor {
    randn(dims, dtype, seed).affine(std, 0.0).unwrap()
}

#[test]
fn patch_embedding_forward_and_backward() {
    // (images [B, C, H, W], patch, width): a 7×5 grid of 2×2 patches; a 2×3 grid of 4×4 patches.
    for (dims, p, d) in [([3, 3, 14, 10], 2, 72), ([2, 3, 8, 12], 4, 33)] {
        let tokens = 1 + (dims[2] / p) * (dims[3] / p);
        for dtype in DTYPES {
            let what = format!("patch_embed {dims:?}/{p} D={d} {dtype}");
            let k = dims[1] * p * p;
            let img = randn(&dims, dtype, 1);
            let w = scaled(&[d, dims[1], p, p], 1.0 / (k as f64).sqrt(), dtype, 2);
            let (cls, pos) = (randn(&[d], dtype, 3), randn(&[tokens, d], dtype, 4));
            // The weight's gradient sums over all B·T token rows.
            let g = scaled(&[dims[0], tokens, d], 1.0 / ((dims[0] * tokens) as f64).sqrt(), dtype, 5);
            compare_with_cpu_tol(&format!("{what} forward"), &[&img, &w, &cls, &pos], gemm_tol(dtype), |t| {
                let out = patch_embed_forward(&t[0], &t[1], &t[2], &t[3], p)?;
                Ok(vec![out.tokens, out.columns])
            });
            compare_with_cpu_tol(&format!("{what} backward"), &[&img, &w, &cls, &pos, &g], gemm_tol(dtype), |t| {
                let out = patch_embed_forward(&t[0], &t[1], &t[2], &t[3], p)?;
                let grads = patch_embed_backward(&t[4], &out.grid, Some(&out.columns), Some(&t[1]), [true; 4])?;
                Ok([grads.images, grads.conv_weight, grads.class_embedding, grads.positional_embedding]
                    .into_iter()
                    .map(|g| g.expect("asked for"))
                    .collect())
            });
        }
    }
}

#[test]
fn token_embedding_forward_and_backward() {
    // Repeated ids, a vocabulary row nobody uses, a positional table longer than the sequence.
    let v: Vec<u32> = (0..15).map(|i| (i * 7 % 11) as u32 % 9).collect();
    let ids = Tensor::from_slice(&v, [3, 5], &Device::Cpu).unwrap();
    for dtype in DTYPES {
        let (table, pos, g) = (randn(&[11, 72], dtype, 6), randn(&[7, 72], dtype, 7), randn(&[3, 5, 72], dtype, 8));
        compare_with_cpu(&format!("token_embed {dtype}"), &[&table, &pos, &g], |t| {
            let ids = Indices::new("test", &ids, 11, t[0].device())?;
            let out = token_embed_forward(&ids, &t[0], &t[1])?;
            let shape = TokenShape::new(&ids, &t[0], &t[1])?;
            let [dt, dp] = token_embed_backward(&t[2], &ids, &shape, [true, true])?;
            Ok(vec![out, dt.expect("asked for"), dp.expect("asked for")])
        });
        // Ids that live on the device are read back once to be checked.
        compare_with_cpu(&format!("token_embed with device ids {dtype}"), &[&table, &pos], |t| {
            let ids = Indices::new("test", &ids.to_device(t[0].device())?, 11, t[0].device())?;
            Ok(vec![token_embed_forward(&ids, &t[0], &t[1])?])
        });
    }
}

#[test]
fn batch_sum_over_chunks_of_several_images() {
    // 5 × 2^17 elements: the batch is split in two chunks of up to three images each.
    let v = vec![1u32; 5 * 128];
    let ids = Tensor::from_slice(&v, [5, 128], &Device::Cpu).unwrap();
    for dtype in DTYPES {
        let (table, pos, g) =
            (randn(&[2, 1024], dtype, 9), randn(&[130, 1024], dtype, 10), randn(&[5, 128, 1024], dtype, 11));
        compare_with_cpu(&format!("positional gradient {dtype}"), &[&table, &pos, &g], |t| {
            let ids = Indices::new("test", &ids, 2, t[0].device())?;
            let shape = TokenShape::new(&ids, &t[0], &t[1])?;
            let [_, dp] = token_embed_backward(&t[2], &ids, &shape, [false, true])?;
            Ok(vec![dp.expect("asked for")])
        });
    }
}
