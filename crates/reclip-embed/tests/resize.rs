//! The positional-embedding resize against open_clip's own
//! `resize_pos_embed` (the fixture tests/fixtures/open_clip/pos_embed_resize,
//! written by tools/make_openclip_fixtures.py), and against an independent
//! computation of PyTorch's antialiased bicubic interpolation, written
//! differently from the crate's: per output pixel, a 2-D weight for every
//! input pixel, from the general Keys formula with a = -0.5, normalised over
//! the whole 2-D window.

use reclip_core::{DType, Device, Tensor, rng};
use reclip_embed::{resize_pos_embed, resize_pos_embed_grid};
use reclip_testkit::{Tolerance, assert_close, test_device};
use safetensors::{Dtype, SafeTensors};
use std::path::PathBuf;

/// Keys' cubic convolution kernel in its textbook form.
fn keys(x: f64, a: f64) -> f64 {
    let t = x.abs();
    if t <= 1.0 {
        (a + 2.0) * t.powi(3) - (a + 3.0) * t.powi(2) + 1.0
    } else if t < 2.0 {
        a * t.powi(3) - 5.0 * a * t.powi(2) + 8.0 * a * t - 4.0 * a
    } else {
        0.0
    }
}

/// Filter value of input pixel `j` for output pixel `i` along one axis: the
/// kernel, stretched by the scale when downsampling, around the output
/// pixel's centre mapped back into the input.
fn tap(i: usize, j: usize, input: usize, output: usize) -> f64 {
    let scale = input as f64 / output as f64;
    let centre = scale * (i as f64 + 0.5);
    keys((j as f64 + 0.5 - centre) / scale.max(1.0), -0.5)
}

fn reference(pos: &[f64], dim: usize, from: [usize; 2], to: [usize; 2]) -> Vec<f64> {
    let mut out = pos[..dim].to_vec();
    for oy in 0..to[0] {
        for ox in 0..to[1] {
            let mut acc = vec![0.0; dim];
            let mut total = 0.0;
            for iy in 0..from[0] {
                for ix in 0..from[1] {
                    let w = tap(oy, iy, from[0], to[0]) * tap(ox, ix, from[1], to[1]);
                    total += w;
                    for (a, &v) in acc.iter_mut().zip(&pos[dim * (1 + iy * from[1] + ix)..][..dim]) {
                        *a += w * v;
                    }
                }
            }
            out.extend(acc.iter().map(|a| a / total));
        }
    }
    out
}

fn table(rows: usize, dim: usize, seed: u64) -> Tensor {
    Tensor::randn([rows, dim], 0.0, 1.0, DType::F64, &Device::Cpu, &mut rng(seed)).unwrap()
}

/// A tensor of the fixture as an f32 CPU tensor.
fn fixture_tensor(st: &SafeTensors, name: &str) -> Tensor {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    assert_eq!(view.dtype(), Dtype::F32, "{name}");
    let data: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Tensor::from_vec(data, view.shape(), &Device::Cpu).unwrap()
}

#[test]
fn matches_open_clip() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/open_clip/pos_embed_resize.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for (case, grid) in [("grid2_to_14", 14), ("grid14_to_4", 4)] {
        let input = fixture_tensor(&st, &format!("{case}.input"));
        let want = fixture_tensor(&st, &format!("{case}.output"));
        // PyTorch computes the weights and sums in f32; reclip in f64, rounded once.
        let tol = Tolerance::new(1e-5, 1e-5);
        assert_close(case, &want, &resize_pos_embed(&input, grid).unwrap(), tol);
        let wide = resize_pos_embed(&input.to_dtype(DType::F64).unwrap(), grid).unwrap();
        assert_close(&format!("{case} in f64"), &want.to_dtype(DType::F64).unwrap(), &wide, tol);
    }
}

#[test]
fn matches_the_independent_computation() {
    // 2×2 → 14×14 (upsampling), 14×14 → 4×4 (downsampling by 3.5), a non-square
    // grid both ways, and a non-integer downscale.
    for (from, to) in [([2, 2], [14, 14]), ([14, 14], [4, 4]), ([7, 5], [3, 8]), ([5, 5], [3, 3])] {
        let dim = 6;
        let pos = table(1 + from[0] * from[1], dim, 7);
        let got = if from[0] == from[1] && to[0] == to[1] {
            resize_pos_embed(&pos, to[0]).unwrap()
        } else {
            resize_pos_embed_grid(&pos, from, to).unwrap()
        };
        let want = reference(&pos.to_vec_f64().unwrap(), dim, from, to);
        let want = Tensor::from_vec(want, [1 + to[0] * to[1], dim], &Device::Cpu).unwrap();
        assert_close(&format!("resize {from:?} → {to:?}"), &want, &got, Tolerance::new(1e-12, 1e-12));
    }
}

#[test]
fn keeps_class_token_dtype_and_device_and_same_size_is_identity() {
    let pos = table(17, 5, 8);
    let same = resize_pos_embed(&pos, 4).unwrap();
    assert_eq!(same.to_vec_f64().unwrap(), pos.to_vec_f64().unwrap());

    let device = test_device();
    let on_device = pos.to_dtype(DType::BF16).unwrap().to_device(&device).unwrap();
    let resized = resize_pos_embed(&on_device, 14).unwrap();
    assert_eq!(resized.dtype(), DType::BF16);
    assert!(resized.device().same(&device));
    assert_eq!(resized.dims(), &[197, 5]);
    assert_eq!(
        resized.narrow(0, 0, 1).unwrap().to_vec_f64().unwrap(),
        on_device.narrow(0, 0, 1).unwrap().to_vec_f64().unwrap()
    );
}

#[test]
fn rejects_tables_that_are_not_a_grid() {
    let err = resize_pos_embed(&table(18, 4, 1), 14).unwrap_err().to_string();
    assert!(err.contains("18 rows are not a class token plus a square grid"), "{err}");
    let err = resize_pos_embed_grid(&table(17, 4, 1), [4, 5], [2, 2]).unwrap_err().to_string();
    assert!(err.contains("a 4×5 grid needs [21, D]"), "{err}");
    assert!(resize_pos_embed(&table(17, 4, 1), 0).is_err());
}
