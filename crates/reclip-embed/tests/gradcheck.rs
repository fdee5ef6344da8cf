//! The embedding ops' gradients against finite differences (f64, CPU), their
//! forward passes against plain loops written from the definitions, and
//! their errors on bad input.

use reclip_autograd::gradcheck::gradcheck;
use reclip_autograd::{Tape, Var};
use reclip_core::{DType, Device, Indices, Tensor, rng};
use reclip_embed::{patch_embed, token_embed};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, DType::F64, &Device::Cpu, &mut rng(seed)).unwrap()
}

fn ids(v: &[u32], dims: [usize; 2], vocab: usize) -> Indices {
    Indices::new("token_embed", &Tensor::from_slice(v, dims, &Device::Cpu).unwrap(), vocab, &Device::Cpu).unwrap()
}

/// The patch embedding as a strided convolution, straight from its definition.
fn conv_reference(img: &[f64], w: &[f64], cls: &[f64], pos: &[f64], dims: [usize; 4], p: usize, d: usize) -> Vec<f64> {
    let [b, c, h, wd] = dims;
    let (gh, gw) = (h / p, wd / p);
    let t = 1 + gh * gw;
    let mut out = vec![0.0; b * t * d];
    for bi in 0..b {
        for e in 0..d {
            out[(bi * t) * d + e] = cls[e] + pos[e];
            for gy in 0..gh {
                for gx in 0..gw {
                    let tok = 1 + gy * gw + gx;
                    let mut acc = pos[tok * d + e];
                    for ci in 0..c {
                        for y in 0..p {
                            for x in 0..p {
                                acc += w[((e * c + ci) * p + y) * p + x]
                                    * img[((bi * c + ci) * h + gy * p + y) * wd + gx * p + x];
                            }
                        }
                    }
                    out[(bi * t + tok) * d + e] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn patch_embed_matches_a_direct_convolution() {
    // A non-square 3×2 grid of 2×2 patches, and a 1×3 grid of 4×4 patches.
    for (dims, p, d) in [([2, 3, 6, 4], 2, 5), ([1, 3, 4, 12], 4, 3)] {
        let [_, c, h, w] = dims;
        let tokens = 1 + (h / p) * (w / p);
        let (img, wt, cls, pos) = (randn(&dims, 1), randn(&[d, c, p, p], 2), randn(&[d], 3), randn(&[tokens, d], 4));
        let got = patch_embed(
            &Var::constant(img.clone()),
            &Var::constant(wt.clone()),
            &Var::constant(cls.clone()),
            &Var::constant(pos.clone()),
            p,
        )
        .unwrap();
        assert_eq!(got.tensor().dims(), &[dims[0], tokens, d]);
        let want = conv_reference(
            &img.to_vec_f64().unwrap(),
            &wt.to_vec_f64().unwrap(),
            &cls.to_vec_f64().unwrap(),
            &pos.to_vec_f64().unwrap(),
            dims,
            p,
            d,
        );
        for (g, w) in got.tensor().to_vec_f64().unwrap().iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
    }
}

#[test]
fn patch_embed_gradients() {
    let (img, wt, cls, pos) = (randn(&[2, 3, 6, 4], 5), randn(&[5, 3, 2, 2], 6), randn(&[5], 7), randn(&[7, 5], 8));
    gradcheck(|v| patch_embed(&v[0], &v[1], &v[2], &v[3], 2), &[&img, &wt, &cls, &pos]).unwrap();
    // Only some inputs tracked: the others get no gradient and need nothing saved.
    let tape = Tape::new();
    let w = tape.input(wt.clone());
    let out = patch_embed(&Var::constant(img), &w, &Var::constant(cls), &Var::constant(pos), 2).unwrap();
    let grads = out.sum_all().unwrap().backward().unwrap();
    assert_eq!(grads.get(&w).unwrap().dims(), &[5, 3, 2, 2]);
}

#[test]
fn patch_embed_rejects_bad_shapes_with_clear_errors() {
    let c = |t: Tensor| Var::constant(t);
    let (wt, cls) = (randn(&[5, 3, 2, 2], 1), randn(&[5], 2));
    let err = patch_embed(&c(randn(&[1, 3, 5, 4], 3)), &c(wt.clone()), &c(cls.clone()), &c(randn(&[7, 5], 4)), 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("5×4") && err.contains("not divisible by the patch size 2"), "{err}");
    let err = patch_embed(&c(randn(&[1, 3, 6, 4], 3)), &c(wt.clone()), &c(cls.clone()), &c(randn(&[5, 5], 4)), 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[7, 5]") && err.contains("3×2 patch grid") && err.contains("resize_pos_embed"), "{err}");
    let err = patch_embed(
        &c(randn(&[1, 3, 6, 4], 3)),
        &c(randn(&[5, 3, 3, 3], 5)),
        &c(cls.clone()),
        &c(randn(&[7, 5], 4)),
        2,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("conv weight must be [D, 3, 2, 2]"), "{err}");
    let err = patch_embed(&c(randn(&[1, 3, 6, 4], 3)), &c(wt.clone()), &c(randn(&[4], 6)), &c(randn(&[7, 5], 4)), 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("class embedding must be [5]"), "{err}");
    let f32_img = randn(&[1, 3, 6, 4], 3).to_dtype(DType::F32).unwrap();
    assert!(patch_embed(&c(f32_img), &c(wt), &c(cls), &c(randn(&[7, 5], 4)), 2).is_err());
}

#[test]
fn token_embed_matches_a_lookup_and_has_correct_gradients() {
    // Repeated tokens (their gradients add up) and a positional table longer than the sequence.
    let tokens = ids(&[3, 0, 3, 1, 3, 2], [2, 3], 4);
    let (table, pos) = (randn(&[4, 5], 10), randn(&[4, 5], 11));
    let out = token_embed(&tokens, &Var::constant(table.clone()), &Var::constant(pos.clone())).unwrap();
    assert_eq!(out.tensor().dims(), &[2, 3, 5]);
    let (o, t, p) = (out.tensor().to_vec_f64().unwrap(), table.to_vec_f64().unwrap(), pos.to_vec_f64().unwrap());
    for (r, &id) in [3usize, 0, 3, 1, 3, 2].iter().enumerate() {
        for e in 0..5 {
            assert_eq!(o[r * 5 + e], t[id * 5 + e] + p[(r % 3) * 5 + e]);
        }
    }
    gradcheck(|v| token_embed(&tokens, &v[0], &v[1]), &[&table, &pos]).unwrap();
}

#[test]
fn token_embed_rejects_bad_ids_and_shapes() {
    let (table, pos) = (Var::constant(randn(&[4, 5], 1)), Var::constant(randn(&[3, 5], 2)));
    let bad = Tensor::from_slice(&[0u32, 4], [1, 2], &Device::Cpu).unwrap();
    let err = Indices::new("token_embed", &bad, 4, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("index 4 out of range"), "{err}");
    let err = token_embed(&ids(&[0, 1, 2, 3], [1, 4], 4), &table, &pos).unwrap_err().to_string();
    assert!(err.contains("sequence length 4"), "{err}");
    let err = token_embed(&ids(&[0, 1], [1, 2], 5), &table, &pos).unwrap_err().to_string();
    assert!(err.contains("checked against 5 entries"), "{err}");
    let floats = Tensor::zeros([1, 2], DType::F32, &Device::Cpu).unwrap();
    let err = Indices::new("token_embed", &floats, 4, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("u32 indices"), "{err}");
}
