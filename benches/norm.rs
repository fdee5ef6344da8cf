//! LayerNorm on each bench device (`RECLIP_BENCH_DEVICE`), in GB/s of the
//! activations each pass must move: x read and y written forward; x and h
//! read, r and y written by the fused residual add; dy and x read and dx
//! written backward.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reclip::core::{DType, Device, Tensor, rng};
use reclip::norm::{add_layer_norm_forward, layer_norm_backward, layer_norm_forward};
use reclip_testkit::{bench_devices, device_label};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn randn(dims: &[usize], dtype: DType, device: &Device, seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, dtype, device, &mut rng(seed)).unwrap()
}

fn layer_norm(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer_norm");
    group.sample_size(10);
    for device in bench_devices() {
        for dtype in [DType::F32, DType::BF16] {
            // (rows, width): 8192 tokens of ViT-B/16 width, and a 2048-wide stream.
            for (rows, dim) in [(8192, 768), (4096, 2048)] {
                let x = randn(&[rows, dim], dtype, &device, 1);
                let (gamma, beta) = (randn(&[dim], dtype, &device, 2), randn(&[dim], dtype, &device, 3));
                let dy = randn(&[rows, dim], dtype, &device, 4);
                let bytes = rows * dim * dtype.size_in_bytes();
                let label = format!("{}_{dtype}_{rows}x{dim}", device_label(&device));
                group.throughput(Throughput::Bytes(2 * bytes as u64));
                group.bench_function(BenchmarkId::new("forward", &label), |b| {
                    b.iter(|| {
                        let out = layer_norm_forward(&x, &gamma, &beta, 1e-5).unwrap();
                        device.synchronize().unwrap();
                        black_box(out.y)
                    })
                });
                let h = randn(&[rows, dim], dtype, &device, 5);
                group.throughput(Throughput::Bytes(4 * bytes as u64));
                group.bench_function(BenchmarkId::new("add_forward", &label), |b| {
                    b.iter(|| {
                        let (r, out) = add_layer_norm_forward(&x, &h, &gamma, &beta, 1e-5).unwrap();
                        device.synchronize().unwrap();
                        black_box((r, out.y))
                    })
                });
                let out = layer_norm_forward(&x, &gamma, &beta, 1e-5).unwrap();
                group.throughput(Throughput::Bytes(3 * bytes as u64));
                group.bench_function(BenchmarkId::new("backward", &label), |b| {
                    b.iter(|| {
                        let grads = layer_norm_backward(&dy, &x, &gamma, &out.mean, &out.rstd).unwrap();
                        device.synchronize().unwrap();
                        black_box(grads.x)
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, layer_norm);
criterion_main!(benches);
