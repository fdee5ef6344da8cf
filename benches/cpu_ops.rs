//! CPU op throughput. Matmul reports GFLOP/s (criterion's "elem/s" counts
//! FLOPs, 2 per multiply-add) for reclip's `Tensor::matmul` next to the `gemm`
//! crate called directly on the same buffers, so any overhead of the tensor
//! layer shows; softmax and elementwise ops report GB/s moved.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gemm::Parallelism;
use reclip::core::{DType, Device, Tensor, rng};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, DType::F32, &Device::Cpu, &mut rng(seed)).unwrap()
}

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul_f32");
    group.sample_size(10);
    // (batch, m, k, n): CLIP-like linear layers and a batch of attention scores.
    for (batch, m, k, n) in [(1, 4096, 512, 512), (1, 4096, 512, 2048), (256, 17, 64, 17)] {
        let label = if batch == 1 { format!("{m}x{k}x{n}") } else { format!("{batch}x({m}x{k})({k}x{n})") };
        group.throughput(Throughput::Elements((2 * batch * m * n * k) as u64));
        let dims_a: Vec<usize> = if batch == 1 { vec![m, k] } else { vec![batch, m, k] };
        let dims_b: Vec<usize> = if batch == 1 { vec![k, n] } else { vec![batch, k, n] };
        let a = randn(&dims_a, 1);
        let b = randn(&dims_b, 2);
        group.bench_function(BenchmarkId::new("reclip", &label), |bench| {
            bench.iter(|| black_box(a.matmul(&b).unwrap()))
        });

        let av = a.to_vec_f32().unwrap();
        let bv = b.to_vec_f32().unwrap();
        let mut cv = vec![0f32; batch * m * n];
        group.bench_function(BenchmarkId::new("gemm_crate", &label), |bench| {
            bench.iter(|| {
                for i in 0..batch {
                    // SAFETY: the three buffers hold batch contiguous row-major matrices.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            cv[i * m * n..].as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            av[i * m * k..].as_ptr(),
                            1,
                            k as isize,
                            bv[i * k * n..].as_ptr(),
                            1,
                            n as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            Parallelism::Rayon(0),
                        )
                    }
                }
                black_box(&mut cv);
            })
        });
    }
    group.finish();
}

fn softmax_and_elementwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory_bound_f32");
    let (rows, cols) = (4096, 1024);
    let x = randn(&[rows, cols], 3);
    let y = randn(&[rows, cols], 4);
    let bias = randn(&[cols], 5);
    let bytes = (rows * cols * 4) as u64;
    group.throughput(Throughput::Bytes(2 * bytes));
    group.bench_function("softmax_4096x1024", |b| b.iter(|| black_box(x.softmax(-1).unwrap())));
    group.bench_function("exp_4096x1024", |b| b.iter(|| black_box(x.exp().unwrap())));
    group.throughput(Throughput::Bytes(3 * bytes));
    group.bench_function("add_4096x1024", |b| b.iter(|| black_box(x.add(&y).unwrap())));
    group.throughput(Throughput::Bytes(2 * bytes));
    group.bench_function("add_bias_4096x1024", |b| b.iter(|| black_box(x.add(&bias).unwrap())));
    group.finish();
}

criterion_group!(benches, matmul, softmax_and_elementwise);
criterion_main!(benches);
