//! AdamW on the CPU against the update written out in f64 from PyTorch's
//! definition, with weight decay, clipping, and a parameter without gradient.

use reclip_autograd::Param;
use reclip_core::{DType, Device, Tensor};
use reclip_optim::{AdamW, AdamWConfig, decays};
use reclip_testkit::randn;

/// One parameter's state, updated in f64 exactly as torch.optim.AdamW does.
struct Reference {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    wd: f64,
}

impl Reference {
    fn new(p: &Param, wd: f64) -> Self {
        let p = p.value().to_vec_f64().unwrap();
        let n = p.len();
        Reference { p, m: vec![0.0; n], v: vec![0.0; n], wd }
    }

    fn step(&mut self, g: &[f64], t: i32, lr: f64, c: &AdamWConfig) {
        let (b1, b2, eps) = (c.beta1 as f64, c.beta2 as f64, c.eps as f64);
        for (((p, m), v), &g) in self.p.iter_mut().zip(&mut self.m).zip(&mut self.v).zip(g) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p *= 1.0 - lr * self.wd;
            let denom = v.sqrt() / (1.0 - b2.powi(t)).sqrt() + eps;
            *p -= lr / (1.0 - b1.powi(t)) * *m / denom;
        }
    }
}

#[test]
fn matches_the_pytorch_update_with_decay_and_clipping() {
    let cfg = AdamWConfig { max_grad_norm: Some(0.5), ..AdamWConfig::default() };
    let w = Param::new("visual.proj", randn(&[7, 5], DType::F32, 1));
    let b = Param::new("visual.ln_post.bias", randn(&[5], DType::F32, 2));
    let unused = Param::new("logit_scale", Tensor::full(2.0, [], DType::F32, &Device::Cpu).unwrap());
    let mut opt = AdamW::new(&[w.clone(), b.clone(), unused.clone()], cfg).unwrap();
    let (mut rw, mut rb) = (Reference::new(&w, 0.2), Reference::new(&b, 0.0));
    for t in 1..=5 {
        let gw = randn(&[7, 5], DType::F32, 10 + t as u64);
        let gb = randn(&[5], DType::F32, 20 + t as u64);
        w.set_grad(Some(gw.clone()));
        b.set_grad(Some(gb.clone()));
        let lr = 0.01 * t as f32;
        let report = opt.step(lr).unwrap();
        let (gw, gb) = (gw.to_vec_f64().unwrap(), gb.to_vec_f64().unwrap());
        let norm = gw.iter().chain(&gb).map(|x| x * x).sum::<f64>().sqrt();
        assert!((report.grad_norm().unwrap().unwrap() as f64 - norm).abs() < 1e-4 * norm);
        let scale = (0.5 / (norm + 1e-6)).min(1.0);
        let gw: Vec<f64> = gw.iter().map(|x| x * scale).collect();
        let gb: Vec<f64> = gb.iter().map(|x| x * scale).collect();
        rw.step(&gw, t, lr as f64, &cfg);
        rb.step(&gb, t, lr as f64, &cfg);
        for (got, want) in [(w.value(), &rw.p), (b.value(), &rb.p)] {
            for (g, e) in got.to_vec_f64().unwrap().iter().zip(want.iter()) {
                assert!((g - e).abs() < 1e-5 * e.abs().max(1.0), "step {t}: {g} vs {e}");
            }
        }
        assert!(w.grad().is_none(), "gradients are consumed");
    }
    assert_eq!(unused.value().to_scalar().unwrap(), 2.0, "a parameter without gradient is not touched");
    assert_eq!(opt.steps(), 5);
}

#[test]
fn weight_decay_follows_open_clip() {
    assert!(decays("visual.transformer.resblocks.0.attn.in_proj_weight", 2));
    assert!(decays("visual.conv1.weight", 4));
    assert!(decays("text_projection", 2));
    assert!(!decays("visual.transformer.resblocks.0.attn.in_proj_bias", 1));
    assert!(!decays("visual.ln_pre.weight", 1));
    assert!(!decays("token_embedding.weight", 2));
    assert!(!decays("visual.positional_embedding", 2));
    assert!(!decays("positional_embedding", 2));
    assert!(!decays("logit_scale", 0));
}

#[test]
fn optimizer_state_round_trips() {
    let w = Param::new("w", randn(&[3, 4], DType::F32, 3));
    let mut a = AdamW::new(std::slice::from_ref(&w), AdamWConfig::default()).unwrap();
    w.set_grad(Some(randn(&[3, 4], DType::F32, 4)));
    a.step(0.1).unwrap();
    let saved: Vec<(String, Tensor, Tensor)> =
        a.moments().map(|(n, m, v)| (n.to_string(), m.clone(), v.clone())).collect();
    let mut b = AdamW::new(std::slice::from_ref(&w), AdamWConfig::default()).unwrap();
    b.restore(a.steps(), |name| saved.iter().find(|(n, _, _)| n == name).map(|(_, m, v)| (m.clone(), v.clone())))
        .unwrap();
    assert_eq!(b.steps(), 1);
    let bm: Vec<Tensor> = b.moments().map(|(_, m, _)| m.clone()).collect();
    assert_eq!(bm[0].to_vec_f32().unwrap(), saved[0].1.to_vec_f32().unwrap());
    assert!(b.restore(1, |_| None).is_err(), "missing state is an error");
}

/// A resized parameter (a new image size's positional embedding) must have
/// its moments reset: stepping with the old ones is refused, not run past
/// their end.
#[test]
fn a_resized_parameter_needs_fresh_moments() {
    let w = Param::new("visual.positional_embedding", randn(&[5, 4], DType::F32, 5));
    let mut adam = AdamW::new(std::slice::from_ref(&w), AdamWConfig::default()).unwrap();
    w.set_value(randn(&[17, 4], DType::F32, 6));
    w.set_grad(Some(randn(&[17, 4], DType::F32, 7)));
    let err = adam.step(0.1).err().expect("a step with stale moments").to_string();
    assert!(err.contains("visual.positional_embedding") && err.contains("reset_moments"), "{err}");
    adam.reset_moments(&w).unwrap();
    adam.step(0.1).unwrap();
    assert_eq!(adam.steps(), 1, "the refused step does not count");
}

/// Or its moments resized with it: the map is applied to both, second
/// moments are never negative, and a map to the wrong shape is refused.
#[test]
fn a_resized_parameter_can_keep_resized_moments() {
    let w = Param::new("visual.positional_embedding", randn(&[5, 4], DType::F32, 5));
    let mut adam = AdamW::new(std::slice::from_ref(&w), AdamWConfig::default()).unwrap();
    w.set_grad(Some(randn(&[5, 4], DType::F32, 8)));
    adam.step(0.1).unwrap();
    let moments = |adam: &AdamW| -> (Vec<f32>, Vec<f32>) {
        adam.moments().map(|(_, m, v)| (m.to_vec_f32().unwrap(), v.to_vec_f32().unwrap())).next().unwrap()
    };
    let (m0, v0) = moments(&adam);
    assert!(m0.iter().any(|&x| x != 0.0) && v0.iter().all(|&x| x > 0.0));

    // A stand-in for the resize: the five rows again, then the first two negated.
    let resize = |t: &Tensor| {
        let x = t.to_vec_f32().unwrap();
        let extra: Vec<f32> = x[..8].iter().map(|&a| -a).collect();
        Ok(Tensor::from_vec([&x[..20], &extra[..]].concat(), [7, 4], &Device::Cpu).unwrap())
    };
    w.set_value(randn(&[7, 4], DType::F32, 6));
    adam.resize_moments(&w, resize).unwrap();
    let (m, v) = moments(&adam);
    assert_eq!(m[..20], m0[..]);
    assert_eq!(m[20..], m0[..8].iter().map(|&a| -a).collect::<Vec<_>>()[..]);
    assert_eq!(v[..20], v0[..]);
    assert!(v[20..].iter().all(|&x| x == 0.0), "negative second moments clamp to zero: {:?}", &v[20..]);
    w.set_grad(Some(randn(&[7, 4], DType::F32, 9)));
    adam.step(0.1).unwrap();

    w.set_value(randn(&[9, 4], DType::F32, 6));
    let err = adam.resize_moments(&w, resize).unwrap_err().to_string();
    assert!(err.contains("[7, 4]") && err.contains("[9, 4]"), "{err}");
}

/// The CPU step's own f32 arithmetic applied to every element, the chunks
/// of unused rows included.
fn dense_f32_step(state: &mut (Vec<f32>, Vec<f32>, Vec<f32>), g: &[f32], t: i32, lr: f32, decay: f32, c: &AdamWConfig) {
    let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
    let (step, rsqrt_bc2) = (lr / bc1, 1.0 / bc2.sqrt());
    let (p, m, v) = state;
    for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
        *m = c.beta1 * *m + (1.0 - c.beta1) * g;
        *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
        *p -= lr * decay * *p;
        *p -= step * *m / (v.sqrt() * rsqrt_bc2 + c.eps);
    }
}

#[test]
fn rows_no_batch_used_are_skipped_and_the_step_is_the_same_to_the_bit() {
    // A token embedding (no decay) and a decayed matrix, both with most rows'
    // gradients zero: the embedding's untouched chunks may be skipped, the
    // matrix's must still decay.
    let cfg = AdamWConfig { max_grad_norm: None, ..AdamWConfig::default() };
    let (rows, dim) = (3000, 8);
    let emb = Param::new("token_embedding.weight", randn(&[rows, dim], DType::F32, 1));
    let proj = Param::new("visual.proj", randn(&[rows, dim], DType::F32, 2));
    let mut opt = AdamW::new(&[emb.clone(), proj.clone()], cfg).unwrap();
    let mut state: Vec<_> = [&emb, &proj]
        .iter()
        .map(|p| (p.value().to_vec_f32().unwrap(), vec![0.0f32; rows * dim], vec![0.0f32; rows * dim]))
        .collect();
    for t in 1..=4 {
        // Rows 7·t.. and the last row: each step touches others, some chunks never.
        let used: Vec<usize> = (0..5).map(|i| (7 * t + 300 * i) % rows).chain([rows - 1]).collect();
        let mut g = vec![0.0f32; rows * dim];
        for (i, &r) in used.iter().enumerate() {
            g[r * dim..][..dim].iter_mut().enumerate().for_each(|(j, x)| *x = 0.1 * (i + j + t) as f32 - 0.3);
        }
        for (param, state) in [&emb, &proj].into_iter().zip(&mut state) {
            param.set_grad(Some(Tensor::from_vec(g.clone(), [rows, dim], &Device::Cpu).unwrap()));
            let decay = if decays(param.name(), 2) { cfg.weight_decay } else { 0.0 };
            dense_f32_step(state, &g, t as i32, 0.01, decay, &cfg);
        }
        opt.step(0.01).unwrap();
        for (param, (p, _, _)) in [&emb, &proj].into_iter().zip(&state) {
            let got = param.value().to_vec_f32().unwrap();
            let differ = got.iter().zip(p).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differ, 0, "step {t}, {}: {differ} elements differ from the dense update", param.name());
        }
    }
    let moments: Vec<_> = opt.moments().map(|(_, m, v)| (m.to_vec_f32().unwrap(), v.to_vec_f32().unwrap())).collect();
    for ((m, v), (_, want_m, want_v)) in moments.iter().zip(&state) {
        assert!(m.iter().zip(want_m).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(v.iter().zip(want_v).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
