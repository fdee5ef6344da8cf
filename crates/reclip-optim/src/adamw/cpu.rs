//! The CPU reference of the step: the global norm summed in f64, then each
//! parameter updated in place with rayon.

use super::{Hyper, Slot, StepReport};
use rayon::prelude::*;
use reclip_core::{Device, Result, Tensor};

pub(super) fn step(slots: &mut [Slot], hyper: Hyper) -> Result<StepReport> {
    let Hyper { cfg, lr, bias_corrections: (bc1, bc2), .. } = hyper;
    let grads: Vec<Option<Tensor>> = slots.iter().map(|s| s.param.take_grad()).collect();
    let mut sq = 0.0f64;
    let mut grad_data: Vec<Option<Vec<f32>>> = Vec::with_capacity(grads.len());
    for g in &grads {
        let d = g.as_ref().map(|g| g.to_vec_f32()).transpose()?;
        if let Some(d) = &d {
            sq += d.par_iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
        }
        grad_data.push(d);
    }
    let norm = sq.sqrt() as f32;
    let scale = match cfg.max_grad_norm {
        Some(max) => (max / (norm + 1e-6)).min(1.0),
        None => 1.0,
    };
    for (s, g) in slots.iter_mut().zip(grad_data) {
        let Some(g) = g else { continue };
        let mut p = s.param.take_value();
        let decay = if s.decay { lr * cfg.weight_decay } else { 0.0 };
        let (step, rsqrt_bc2) = (lr / bc1, 1.0 / bc2.sqrt());
        {
            let pd = p.cpu_data_mut::<f32>()?;
            let md = s.m.cpu_data_mut::<f32>()?;
            let vd = s.v.cpu_data_mut::<f32>()?;
            pd.par_iter_mut().zip(md.par_iter_mut()).zip(vd.par_iter_mut()).zip(g.par_iter()).for_each(
                |(((p, m), v), &g)| {
                    let g = g * scale;
                    *m = cfg.beta1 * *m + (1.0 - cfg.beta1) * g;
                    *v = cfg.beta2 * *v + (1.0 - cfg.beta2) * g * g;
                    *p -= decay * *p;
                    *p -= step * *m / (v.sqrt() * rsqrt_bc2 + cfg.eps);
                },
            );
        }
        s.param.set_value(p);
    }
    Ok(StepReport { norm: Some(Tensor::from_vec(vec![norm], [1], &Device::Cpu)?) })
}
