//! The MLP's kernels in GB/s of the activations they move (GELU forward: u
//! read, h written; backward: dh and u read, du written; the bias gradient:
//! dy read), and a whole ViT-B MLP forward and backward, exact GELU and its
//! tanh approximation (fused into the GEMMs on a GPU), in GFLOP/s of its six
//! GEMMs (criterion's "elem/s" counts FLOPs, 2 per multiply-add), on each
//! bench device (`RECLIP_BENCH_DEVICE`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reclip::autograd::Tape;
use reclip::core::{DType, Device, Tensor, rng};
use reclip::mlp::{Activation, activation_backward, activation_forward, bias_grad, mlp};
use reclip_testkit::{bench_devices, device_label};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn randn(dims: &[usize], dtype: DType, device: &Device, seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, dtype, device, &mut rng(seed)).unwrap()
}

fn epilogues(c: &mut Criterion) {
    let mut group = c.benchmark_group("mlp_epilogue");
    group.sample_size(10);
    // c_fc's output for 4096 tokens of ViT-B (width 768, hidden 3072).
    let (rows, cols) = (4096, 3072);
    for device in bench_devices() {
        for dtype in [DType::F32, DType::BF16] {
            let (u, dy) = (randn(&[rows, cols], dtype, &device, 1), randn(&[rows, cols], dtype, &device, 2));
            let bytes = (rows * cols * dtype.size_in_bytes()) as u64;
            let label = format!("{}_{dtype}_{rows}x{cols}", device_label(&device));
            group.throughput(Throughput::Bytes(2 * bytes));
            group.bench_function(BenchmarkId::new("gelu_forward", &label), |b| {
                b.iter(|| {
                    let y = activation_forward(&u, Activation::Gelu).unwrap();
                    device.synchronize().unwrap();
                    black_box(y)
                })
            });
            group.throughput(Throughput::Bytes(3 * bytes));
            group.bench_function(BenchmarkId::new("gelu_backward", &label), |b| {
                b.iter(|| {
                    let g = activation_backward(&dy, &u, Activation::Gelu).unwrap();
                    device.synchronize().unwrap();
                    black_box(g)
                })
            });
            group.throughput(Throughput::Bytes(bytes));
            group.bench_function(BenchmarkId::new("bias_grad", &label), |b| {
                b.iter(|| {
                    let db = bias_grad(&dy).unwrap();
                    device.synchronize().unwrap();
                    black_box(db)
                })
            });
        }
    }
    group.finish();
}

fn layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("mlp_layer");
    group.sample_size(10);
    let (width, hidden) = (768, 3072);
    for device in bench_devices() {
        let rows = if device.is_cpu() { 512 } else { 8192 };
        let dtypes: &[DType] = if device.is_cpu() { &[DType::F32] } else { &[DType::F32, DType::BF16] };
        for &dtype in dtypes {
            let x = randn(&[rows, width], dtype, &device, 4);
            let (w1, b1) = (randn(&[hidden, width], dtype, &device, 5), randn(&[hidden], dtype, &device, 6));
            let (w2, b2) = (randn(&[width, hidden], dtype, &device, 7), randn(&[width], dtype, &device, 8));
            let g = randn(&[rows, width], dtype, &device, 9);
            // Two GEMMs forward, four backward.
            group.throughput(Throughput::Elements((6 * 2 * rows * width * hidden) as u64));
            let label = format!("{}_{dtype}_{rows}x{width}x{hidden}", device_label(&device));
            for (name, act) in [("gelu", Activation::Gelu), ("gelu_tanh", Activation::GeluTanh)] {
                group.bench_function(BenchmarkId::new(format!("{name}_forward_backward"), &label), |bench| {
                    bench.iter(|| {
                        let tape = Tape::new();
                        let v: Vec<_> = [&x, &w1, &b1, &w2, &b2].iter().map(|t| tape.input((*t).clone())).collect();
                        let y = mlp(&v[0], &v[1], &v[2], &v[3], &v[4], act).unwrap();
                        let grads = y.backward_with(g.clone()).unwrap();
                        device.synchronize().unwrap();
                        black_box(grads.get(&v[1]).cloned())
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, epilogues, layer);
criterion_main!(benches);
