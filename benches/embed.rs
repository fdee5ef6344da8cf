//! Embedding layers on each bench device (`RECLIP_BENCH_DEVICE`). The patch
//! embedding reports GFLOP/s of its GEMM (criterion's "elem/s" counts FLOPs,
//! 2 per multiply-add) at RECLIP's 64px and at 224px, ViT-B/16 widths; the
//! token embedding reports GB/s of the memory it must move.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reclip::core::{DType, Device, Indices, Tensor, rng};
use reclip::embed::{TokenShape, patch_embed_backward, patch_embed_forward, token_embed_backward, token_embed_forward};
use reclip_testkit::{bench_devices, device_label};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn randn(dims: &[usize], dtype: DType, device: &Device, seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 0.02, dtype, device, &mut rng(seed)).unwrap()
}

fn patch_embedding(c: &mut Criterion) {
    let mut group = c.benchmark_group("patch_embed");
    group.sample_size(10);
    let (patch, dim) = (16, 768);
    for device in bench_devices() {
        let dtypes: &[DType] = if device.is_cpu() { &[DType::F32] } else { &[DType::F32, DType::BF16] };
        for &dtype in dtypes {
            // (batch, image side): RECLIP's low-resolution phase and the 224px finetune.
            for (batch, side) in [(32, 64), (8, 224)] {
                let tokens = 1 + (side / patch) * (side / patch);
                let img = randn(&[batch, 3, side, side], dtype, &device, 1);
                let w = randn(&[dim, 3, patch, patch], dtype, &device, 2);
                let (cls, pos) = (randn(&[dim], dtype, &device, 3), randn(&[tokens, dim], dtype, &device, 4));
                let flops = 2 * batch * tokens * 3 * patch * patch * dim;
                let label = format!("{}_{dtype}_b{batch}_{side}px", device_label(&device));
                group.throughput(Throughput::Elements(flops as u64));
                group.bench_function(BenchmarkId::new("forward", &label), |b| {
                    b.iter(|| {
                        let out = patch_embed_forward(&img, &w, &cls, &pos, patch).unwrap();
                        device.synchronize().unwrap();
                        black_box(out.tokens)
                    })
                });
                let out = patch_embed_forward(&img, &w, &cls, &pos, patch).unwrap();
                let g = randn(&[batch, tokens, dim], dtype, &device, 5);
                // The weight's GEMM plus the batch sums of the class and positional embeddings.
                group.bench_function(BenchmarkId::new("backward_params", &label), |b| {
                    b.iter(|| {
                        let grads =
                            patch_embed_backward(&g, &out.grid, Some(&out.columns), None, [false, true, true, true])
                                .unwrap();
                        device.synchronize().unwrap();
                        black_box(grads.conv_weight)
                    })
                });
                // The images' gradient (not needed in training): a GEMM and col2im.
                group.bench_function(BenchmarkId::new("backward_images", &label), |b| {
                    b.iter(|| {
                        let grads =
                            patch_embed_backward(&g, &out.grid, None, Some(&w), [true, false, false, false]).unwrap();
                        device.synchronize().unwrap();
                        black_box(grads.images)
                    })
                });
            }
        }
    }
    group.finish();
}

fn token_embedding(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_embed");
    group.sample_size(10);
    // CLIP's text tower: a 49408-token vocabulary, width 512, context 77.
    let (batch, len, vocab, dim) = (256, 77, 49408, 512);
    let ids: Vec<u32> = (0..batch * len).map(|i| ((i * 7919) % vocab) as u32).collect();
    let ids_cpu = Tensor::from_vec(ids, [batch, len], &Device::Cpu).unwrap();
    for device in bench_devices() {
        let dtypes: &[DType] = if device.is_cpu() { &[DType::F32] } else { &[DType::F32, DType::BF16] };
        for &dtype in dtypes {
            let ids = Indices::new("token_embed", &ids_cpu, vocab, &device).unwrap();
            let (table, pos) = (randn(&[vocab, dim], dtype, &device, 6), randn(&[len, dim], dtype, &device, 7));
            let g = randn(&[batch, len, dim], dtype, &device, 8);
            let shape = TokenShape::new(&ids, &table, &pos).unwrap();
            let size = dtype.size_in_bytes();
            let label = format!("{}_{dtype}", device_label(&device));
            // Gathered rows read, output written (the positional rows stay in cache).
            group.throughput(Throughput::Bytes((2 * batch * len * dim * size) as u64));
            group.bench_function(BenchmarkId::new("forward", &label), |b| {
                b.iter(|| {
                    let out = token_embed_forward(&ids, &table, &pos).unwrap();
                    device.synchronize().unwrap();
                    black_box(out)
                })
            });
            // The dense table gradient written, the output gradient read twice (table and positions).
            group.throughput(Throughput::Bytes(((vocab * dim + 2 * batch * len * dim) * size) as u64));
            group.bench_function(BenchmarkId::new("backward", &label), |b| {
                b.iter(|| {
                    let grads = token_embed_backward(&g, &ids, &shape, [true, true]).unwrap();
                    device.synchronize().unwrap();
                    black_box(grads)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, patch_embedding, token_embedding);
criterion_main!(benches);
