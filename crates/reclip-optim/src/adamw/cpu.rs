//! The CPU reference of the step: the global norm summed in f64, then each
//! parameter updated in place with rayon, chunk by chunk.

use super::{Hyper, Slot, StepReport};
use rayon::prelude::*;
use reclip_core::cpu::reduce::lane_sum;
use reclip_core::{Device, Result, Tensor};

/// Elements per parallel task. A chunk whose gradient and moments are all
/// zero and which has no weight decay is skipped: the token embedding's
/// rows that no batch has used yet (most of a 49408-token vocabulary) are
/// read, not written, and the result is the same to the bit.
const CHUNK: usize = 2048;

/// Σx² of each chunk in f64 (exact squares, in reclip-core's `lane_sum`
/// order: the same for any thread count). A chunk's sum is 0 exactly when
/// all of it is ±0.
fn chunk_squares(g: &[f32]) -> Vec<f64> {
    g.par_chunks(CHUNK).map(|c| lane_sum(c.len(), |j| f64::from(c[j]) * f64::from(c[j]))).collect()
}

/// Whether every element is ±0, reading 64 at a time (a loop that runs in
/// lanes and stops at the first block that is not).
fn all_zero(x: &[f32]) -> bool {
    x.chunks(64).all(|b| b.iter().fold(0u32, |acc, &v| acc | (v.to_bits() << 1)) == 0)
}

pub(super) fn step(slots: &mut [Slot], hyper: Hyper) -> Result<StepReport> {
    let Hyper { cfg, lr, bias_corrections: (bc1, bc2), .. } = hyper;
    let grads: Vec<Option<Tensor>> = slots.iter().map(|s| s.param.take_grad()).collect();
    let mut sq = 0.0f64;
    // Read in place (f32 gradients are borrowed, not copied: the token
    // embedding's alone is vocabulary × width).
    let mut grad_data = Vec::with_capacity(grads.len());
    for g in &grads {
        let d = g.as_ref().map(|g| g.cpu_real::<f32>("adamw")).transpose()?;
        let squares = d.as_ref().map(|d| chunk_squares(d));
        sq += squares.iter().flatten().sum::<f64>();
        grad_data.push(d.zip(squares));
    }
    let norm = sq.sqrt() as f32;
    let scale = match cfg.max_grad_norm {
        Some(max) => (max / (norm + 1e-6)).min(1.0),
        None => 1.0,
    };
    for (s, g) in slots.iter_mut().zip(grad_data) {
        let Some((g, squares)) = g else { continue };
        let mut p = s.param.take_value();
        let decay = if s.decay { lr * cfg.weight_decay } else { 0.0 };
        let (step, rsqrt_bc2) = (lr / bc1, 1.0 / bc2.sqrt());
        {
            let pd = p.cpu_data_mut::<f32>()?;
            let md = s.m.cpu_data_mut::<f32>()?;
            let vd = s.v.cpu_data_mut::<f32>()?;
            let chunks = pd.par_chunks_mut(CHUNK).zip(md.par_chunks_mut(CHUNK)).zip(vd.par_chunks_mut(CHUNK));
            chunks.zip(g.par_chunks(CHUNK)).zip(&squares).for_each(|((((p, m), v), g), &g_squares)| {
                if decay == 0.0 && g_squares == 0.0 && all_zero(m) && all_zero(v) {
                    // An update that leaves the chunk as it is: with g, m and
                    // v zero, m and v stay +0 and p moves by step·0/ε = 0.
                    return;
                }
                for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                    let g = g * scale;
                    *m = cfg.beta1 * *m + (1.0 - cfg.beta1) * g;
                    *v = cfg.beta2 * *v + (1.0 - cfg.beta2) * g * g;
                    *p -= decay * *p;
                    *p -= step * *m / (v.sqrt() * rsqrt_bc2 + cfg.eps);
                }
            });
        }
        s.param.set_value(p);
    }
    Ok(StepReport { norm: Some(Tensor::from_vec(vec![norm], [1], &Device::Cpu)?) })
}
