//! The MLP's epilogues in GB/s of the activations they move (bias + GELU
//! forward: z read, y written; backward: dy and z read, du written, plus the
//! bias gradient; the bias gradient alone: dy read), and a whole ViT-B MLP
//! layer forward and backward in GFLOP/s of its three GEMMs (criterion's
//! "elem/s" counts FLOPs, 2 per multiply-add), on each bench device
//! (`RECLIP_BENCH_DEVICE`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reclip::autograd::Tape;
use reclip::core::{DType, Device, Tensor, rng};
use reclip::mlp::{Activation, bias_act_backward, bias_act_forward, bias_grad, linear_act};
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
            let (z, dy) = (randn(&[rows, cols], dtype, &device, 1), randn(&[rows, cols], dtype, &device, 2));
            let bias = randn(&[cols], dtype, &device, 3);
            let bytes = (rows * cols * dtype.size_in_bytes()) as u64;
            let label = format!("{}_{dtype}_{rows}x{cols}", device_label(&device));
            group.throughput(Throughput::Bytes(2 * bytes));
            group.bench_function(BenchmarkId::new("bias_gelu_forward", &label), |b| {
                b.iter(|| {
                    let y = bias_act_forward(&z, &bias, Some(Activation::Gelu)).unwrap();
                    device.synchronize().unwrap();
                    black_box(y)
                })
            });
            group.throughput(Throughput::Bytes(3 * bytes));
            group.bench_function(BenchmarkId::new("bias_gelu_backward", &label), |b| {
                b.iter(|| {
                    let g = bias_act_backward(&dy, &z, &bias, Activation::Gelu).unwrap();
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
            let (w, b) = (randn(&[hidden, width], dtype, &device, 5), randn(&[hidden], dtype, &device, 6));
            let g = randn(&[rows, hidden], dtype, &device, 7);
            // One GEMM forward, two backward.
            group.throughput(Throughput::Elements((3 * 2 * rows * width * hidden) as u64));
            let label = format!("{}_{dtype}_{rows}x{width}x{hidden}", device_label(&device));
            group.bench_function(BenchmarkId::new("linear_gelu_forward_backward", &label), |bench| {
                bench.iter(|| {
                    let tape = Tape::new();
                    let (xv, wv, bv) = (tape.input(x.clone()), tape.input(w.clone()), tape.input(b.clone()));
                    let y = linear_act(&xv, &wv, &bv, Activation::Gelu).unwrap();
                    let grads = y.backward_with(g.clone()).unwrap();
                    device.synchronize().unwrap();
                    black_box(grads.get(&wv).cloned())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, epilogues, layer);
criterion_main!(benches);
