//! Fused attention at CLIP's shapes (head width 64, batch·heads ≥ 1024), on
//! the CPU and, with `--features cuda` and RECLIP_BENCH_DEVICE=cuda or all, on
//! the GPU. Criterion's "elem/s" are FLOP/s of the matrix products counted
//! densely: 4·B·H·L²·d for the forward (Q·Kᵀ and P·V), 10·B·H·L²·d for the
//! backward (Q·Kᵀ recomputed, dO·Vᵀ, Pᵀ·dO, dS·K, dSᵀ·Q). Causal runs (the
//! text tower) are counted densely too, although they skip about half.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reclip::attention::{attention_backward, attention_forward};
use reclip::core::{DType, Device, Tensor, rng};
use reclip_testkit::{bench_devices, device_label};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HEAD_WIDTH: usize = 64;

struct Case {
    name: &'static str,
    len: usize,
    heads: usize,
    causal: bool,
}

const CASES: [Case; 4] = [
    Case { name: "vit_b16_64px_L17", len: 17, heads: 12, causal: false },
    Case { name: "vit_b32_224px_L50", len: 50, heads: 12, causal: false },
    Case { name: "text_L77_causal", len: 77, heads: 8, causal: true },
    Case { name: "vit_b16_224px_L197", len: 197, heads: 12, causal: false },
];

fn dtypes(device: &Device) -> &'static [DType] {
    // The CPU computes bf16 in f32: only the GPU has a separate bf16 path.
    if device.is_cpu() { &[DType::F32] } else { &[DType::F32, DType::BF16] }
}

fn attention(c: &mut Criterion) {
    for device in bench_devices() {
        for &dtype in dtypes(&device) {
            let mut fwd = c.benchmark_group(format!("attention_fwd_{}_{dtype}", device_label(&device)));
            fwd.sample_size(10);
            let mut inputs = Vec::new();
            for case in &CASES {
                let batch = 1024usize.div_ceil(case.heads);
                let width = case.heads * HEAD_WIDTH;
                let flops = (batch * case.heads * case.len * case.len * HEAD_WIDTH) as u64;
                let mut r = rng(case.len as u64);
                let qkv = Tensor::randn([batch, case.len, 3 * width], 0.0, 1.0, dtype, &device, &mut r).unwrap();
                let d_out = Tensor::randn([batch, case.len, width], 0.0, 1.0, dtype, &device, &mut r).unwrap();
                fwd.throughput(Throughput::Elements(4 * flops));
                fwd.bench_function(BenchmarkId::from_parameter(case.name), |b| {
                    b.iter(|| {
                        let out = attention_forward(&qkv, case.heads, case.causal).unwrap();
                        device.synchronize().unwrap();
                        black_box(out)
                    })
                });
                inputs.push((qkv, d_out, flops));
            }
            fwd.finish();

            let mut bwd = c.benchmark_group(format!("attention_bwd_{}_{dtype}", device_label(&device)));
            bwd.sample_size(10);
            for (case, (qkv, d_out, flops)) in CASES.iter().zip(&inputs) {
                let saved = attention_forward(qkv, case.heads, case.causal).unwrap();
                bwd.throughput(Throughput::Elements(10 * flops));
                bwd.bench_function(BenchmarkId::from_parameter(case.name), |b| {
                    b.iter(|| {
                        let d_qkv = attention_backward(qkv, &saved, d_out, case.heads, case.causal).unwrap();
                        device.synchronize().unwrap();
                        black_box(d_qkv)
                    })
                });
            }
            bwd.finish();
        }
    }
}

criterion_group!(benches, attention);
criterion_main!(benches);
