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
