//! FLIP's patch dropout: the kept tokens and their gradient equal open_clip's
//! `PatchDropout` on the fixture tests/fixtures/open_clip/patch_dropout.safetensors
//! (open_clip 3.3.0, f64; given the patches open_clip kept), the kept count
//! is open_clip's formula, and the draws are subsets of the right size,
//! reproducible from (seed, step, row) and uniform over the patches.

use reclip_autograd::Tape;
use reclip_core::{Device, Tensor};
use reclip_model::patch_dropout::{draw, drop_patches, kept};
use safetensors::{Dtype, SafeTensors};
use std::path::PathBuf;

fn fixture() -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/open_clip/patch_dropout.safetensors");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A float64 tensor of the fixture.
fn floats(st: &SafeTensors<'_>, name: &str) -> Tensor {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    assert_eq!(view.dtype(), Dtype::F64, "{name}");
    let v: Vec<f64> = view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
    Tensor::from_vec(v, view.shape(), &Device::Cpu).unwrap()
}

/// The kept patches, one list per image.
fn kept_lists(st: &SafeTensors<'_>, name: &str) -> Vec<Vec<u32>> {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    assert_eq!(view.dtype(), Dtype::I64, "{name}");
    let v: Vec<u32> = view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32).collect();
    v.chunks(view.shape()[1]).map(<[u32]>::to_vec).collect()
}

#[test]
fn the_kept_tokens_and_their_gradient_equal_open_clips() {
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for (key, patches, prob) in [("b3_g4_p0.5", 16, 0.5), ("b2_g7_p0.75", 49, 0.75), ("b2_g2_p0.9", 4, 0.9)] {
        let get = |what: &str| floats(&st, &format!("{key}.{what}"));
        let lists = kept_lists(&st, &format!("{key}.kept"));
        assert!(
            lists.iter().all(|l| l.len() == kept(patches, prob)),
            "{key}: open_clip kept {} patches",
            lists[0].len()
        );
        let tape = Tape::new();
        let x = tape.input(get("tokens"));
        let y = drop_patches(&x, &lists).unwrap();
        assert_eq!(y.tensor().to_vec_f64().unwrap(), get("output").to_vec_f64().unwrap(), "{key}: the kept tokens");
        let grads = y.backward_with(get("upstream")).unwrap();
        assert_eq!(
            grads.get(&x).unwrap().to_vec_f64().unwrap(),
            get("grad_tokens").to_vec_f64().unwrap(),
            "{key}: the gradient"
        );
    }
}

#[test]
fn the_kept_count_is_open_clips_formula() {
    // max(1, int(N · (1 − p))), with Python's float arithmetic: 16 · 0.3 is 4.800000000000001.
    for (patches, prob, want) in
        [(16, 0.5, 8), (49, 0.75, 12), (4, 0.9, 1), (196, 0.5, 98), (16, 0.7, 4), (196, 0.0, 196), (3, 0.99, 1)]
    {
        assert_eq!(kept(patches, prob), want, "N = {patches}, p = {prob}");
    }
}

#[test]
fn draws_are_reproducible_subsets_uniform_over_the_patches() {
    let (patches, keep) = (49, 12);
    let mut counts = vec![0usize; patches];
    let rows = 4000;
    for row in 0..rows {
        let k = draw(7, 3, row, patches, keep);
        assert_eq!(k, draw(7, 3, row, patches, keep), "the same (seed, step, row), the same patches");
        assert_eq!(k.len(), keep);
        assert!(k.windows(2).all(|w| w[0] < w[1]) && k.iter().all(|&p| (p as usize) < patches), "{k:?}");
        k.iter().for_each(|&p| counts[p as usize] += 1);
    }
    assert_ne!(draw(7, 3, 0, patches, keep), draw(7, 4, 0, patches, keep), "another step draws anew");
    assert_ne!(draw(7, 3, 0, patches, keep), draw(8, 3, 0, patches, keep), "another seed draws anew");
    // Each patch is kept with probability 12/49: about 980 of 4000 rows,
    // binomial standard deviation 27; all within 5 deviations.
    let expected = rows as f64 * keep as f64 / patches as f64;
    let sd = (expected * (1.0 - keep as f64 / patches as f64)).sqrt();
    for (p, &c) in counts.iter().enumerate() {
        assert!((c as f64 - expected).abs() < 5.0 * sd, "patch {p} kept {c} times, expected about {expected:.0}");
    }
}

#[test]
fn bad_subsets_are_errors() {
    let x = reclip_autograd::Var::constant(Tensor::zeros([2, 5, 3], reclip_core::DType::F32, &Device::Cpu).unwrap());
    let err = |kept: &[Vec<u32>]| drop_patches(&x, kept).expect_err("refused").to_string();
    assert!(err(&[vec![0], vec![1, 2]]).contains("all of one size"));
    assert!(err(&[vec![0]]).contains("1 subsets of patches for 2 images"));
    assert!(err(&[vec![0], vec![4]]).contains("patch 4 of image 1 is beyond its 4 patches"));
}
