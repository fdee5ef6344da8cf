//! The fused AdamW step (kernels/adamw.cu) on the device under test against
//! the CPU optimizer: parameters, moments and the gradient norm, over odd
//! sizes and a parameter larger than one chunk, in chunks taken in 16-byte
//! packs and chunks taken element by element.

use reclip_autograd::Param;
use reclip_core::{DType, Tensor};
use reclip_optim::{AdamW, AdamWConfig};
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
