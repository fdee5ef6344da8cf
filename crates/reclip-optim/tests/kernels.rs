//! The fused AdamW step (kernels/adamw.cu) on the device under test against
//! the CPU optimizer: parameters, moments and the gradient norm, over odd
//! sizes and a parameter larger than one chunk, in chunks taken in 16-byte
//! packs and chunks taken element by element.

use reclip_autograd::Param;
use reclip_core::{DType, Tensor};
use reclip_optim::{AdamW, AdamWConfig, StepScalars};
use reclip_testkit::{Tolerance, assert_close, randn, test_device};

fn params(device: &reclip_core::Device) -> Vec<Param> {
    // Chunks in 16-byte packs (the weight's two, the biases) and not (35
    // elements, 1); the second bias follows the odd-sized embedding.
    let shapes: [(&str, &[usize]); 5] = [
        ("visual.transformer.resblocks.0.mlp.c_fc.weight", &[300, 229]),
        ("visual.transformer.resblocks.0.mlp.c_fc.bias", &[300]),
        ("token_embedding.weight", &[7, 5]),
        ("visual.transformer.resblocks.0.mlp.c_proj.bias", &[64]),
        ("logit_scale", &[]),
    ];
    shapes
        .iter()
        .enumerate()
        .map(|(i, (name, dims))| Param::new(*name, randn(dims, DType::F32, i as u64).to_device(device).unwrap()))
        .collect()
}

#[test]
fn fused_step_matches_cpu() {
    for max_grad_norm in [Some(1.0), None] {
        let cfg = AdamWConfig { max_grad_norm, ..AdamWConfig::default() };
        let device = test_device();
        let cpu: Vec<Param> = params(&reclip_core::Device::Cpu);
        let gpu: Vec<Param> = params(&device);
        let mut cpu_opt = AdamW::new(&cpu, cfg).unwrap();
        let mut gpu_opt = AdamW::new(&gpu, cfg).unwrap();
        for step in 0..3u64 {
            for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
                let grad = randn(c.value().dims(), DType::F32, 100 + 10 * step + i as u64).scale(3.0).unwrap();
                c.set_grad(Some(grad.clone()));
                g.set_grad(Some(grad.to_device(&device).unwrap()));
            }
            let rc = cpu_opt.step(1e-2).unwrap();
            let rg = gpu_opt.step(1e-2).unwrap();
            let (nc, ng) = (rc.grad_norm().unwrap().unwrap(), rg.grad_norm().unwrap().unwrap());
            assert!((nc - ng).abs() <= 1e-4 * nc, "grad norm {nc} vs {ng}");
            for (c, g) in cpu.iter().zip(&gpu) {
                assert_close(
                    &format!("{} after step {step}", c.name()),
                    &c.value(),
                    &g.value(),
                    Tolerance::new(1e-5, 1e-6),
                );
            }
        }
        let moments = |o: &AdamW| -> Vec<Tensor> { o.moments().flat_map(|(_, m, v)| [m.clone(), v.clone()]).collect() };
        for (c, g) in moments(&cpu_opt).iter().zip(moments(&gpu_opt)) {
            assert_close("moment", c, &g, Tolerance::new(1e-5, 1e-7));
        }
    }
}

/// Steps recorded as a graph — the update reading the learning rate and
/// bias corrections from device memory written before each replay — equal
/// plain steps bit for bit, with a new learning rate each step.
#[test]
fn replayed_steps_match_plain_steps_bit_for_bit() {
    let device = test_device();
    let gpu = device.gpu().expect("the device under test is a GPU").clone();
    let cfg = AdamWConfig::default();
    let (plain, replayed) = (params(&device), params(&device));
    let mut plain_opt = AdamW::new(&plain, cfg).unwrap();
    let mut graph_opt = AdamW::new(&replayed, cfg).unwrap();
    let grads = |step: u64| -> Vec<Tensor> {
        plain.iter().enumerate().map(|(i, p)| randn(p.value().dims(), DType::F32, 500 + 10 * step + i as u64)).collect()
    };
    // A plain step first, as in training: it builds the chunk table.
    for (params, opt) in [(&plain, &mut plain_opt), (&replayed, &mut graph_opt)] {
        for (p, g) in params.iter().zip(grads(0)) {
            p.set_grad(Some(g.to_device(&device).unwrap()));
        }
        opt.step(1e-2).unwrap();
    }
    // The recording's gradients are made inside it, from buffers the host
    // rewrites before each replay, as a recorded backward makes them.
    let sources: Vec<Tensor> =
        replayed.iter().map(|p| Tensor::empty(p.value().dims(), DType::F32, &device).unwrap()).collect();
    let scalars = StepScalars::new(&device).unwrap();
    let graph = gpu
        .capture(|| {
            for (p, source) in replayed.iter().zip(&sources) {
                p.set_grad(Some(source.copy()?));
            }
            graph_opt.record_step(&scalars).map(drop)
        })
        .unwrap();
    let bits = |t: &Tensor| -> Vec<u32> { t.to_vec_f32().unwrap().iter().map(|v| v.to_bits()).collect() };
    for step in 1..4u64 {
        let lr = 1e-2 / step as f32;
        for ((p, source), g) in plain.iter().zip(&sources).zip(grads(step)) {
            p.set_grad(Some(g.to_device(&device).unwrap()));
            let host: Vec<u8> = g.to_vec_f32().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect();
            gpu.backend().write(source.gpu_ptr().unwrap(), &host).unwrap();
        }
        plain_opt.step(lr).unwrap();
        graph_opt.prepare_replay(lr, &scalars).unwrap();
        graph.replay().unwrap();
        for (p, r) in plain.iter().zip(&replayed) {
            assert!(bits(&p.value()) == bits(&r.value()), "{} after step {step}", p.name());
        }
    }
    let moments = |o: &AdamW| -> Vec<Vec<u32>> { o.moments().flat_map(|(_, m, v)| [bits(m), bits(v)]).collect() };
    assert!(moments(&plain_opt) == moments(&graph_opt), "moments differ");
    assert_eq!(plain_opt.steps(), graph_opt.steps());
}
