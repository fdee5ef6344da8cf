//! What the emulator promises to catch, shown on deliberately wrong kernels
//! (kernels/emulator_selftest.cu), and how it reports launch mistakes.

use reclip_core::{DType, Device, KernelArg, Launch, Tensor};
use reclip_emu::Emulator;

fn launch(
    device: &Device,
    kernel: &'static str,
    blocks: u32,
    threads: u32,
    args: &[KernelArg],
) -> reclip_core::Result<()> {
    device.gpu().expect("emulator device").launch(&Launch::linear(kernel, blocks, threads, args))
}

fn ptr(t: &Tensor) -> KernelArg {
    KernelArg::Ptr(t.gpu_ptr().unwrap())
}

#[test]
fn a_missing_syncthreads_is_caught_for_most_seeds() {
    let n = 256;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let correct: Vec<f32> = (0..n).map(|i| ((i + 1) % n) as f32).collect();
    let mut wrong_seeds = 0;
    for seed in 0..20 {
        let device = Emulator::device(seed);
        let input = Tensor::from_vec(x.clone(), [n], &device).unwrap();
        let out = Tensor::empty([n], DType::F32, &device).unwrap();
        launch(&device, "selftest_missing_sync_f32", 1, n as u32, &[ptr(&input), ptr(&out), KernelArg::I32(n as i32)])
            .unwrap();
        if out.to_vec_f32().unwrap() != correct {
            wrong_seeds += 1;
        }
    }
    assert!(wrong_seeds >= 15, "the race showed in only {wrong_seeds} of 20 seeds");
}

#[test]
fn reading_unwritten_shared_memory_gives_nan() {
    let device = Emulator::device(1);
    let n = 64;
    let out = Tensor::empty([n], DType::F32, &device).unwrap();
    launch(&device, "selftest_uninitialised_shared_f32", 1, n as u32, &[ptr(&out), KernelArg::I32(n as i32)]).unwrap();
    let v = out.to_vec_f32().unwrap();
    assert!(v[..32].iter().all(|&x| x == 1.0), "written slots read back");
    assert!(v[32..].iter().all(|x| x.is_nan()), "unwritten slots are NaN: {:?}", &v[32..]);
}

#[test]
fn freshly_allocated_memory_is_nan() {
    let device = Emulator::device(2);
    let t = Tensor::empty([7, 5], DType::F32, &device).unwrap();
    assert!(t.to_vec_f32().unwrap().iter().all(|x| x.is_nan()));
    let b = Tensor::empty([9], DType::BF16, &device).unwrap();
    assert!(b.to_vec_f32().unwrap().iter().all(|x| x.is_nan()));
}

#[test]
fn a_barrier_not_every_thread_reaches_is_a_deadlock() {
    let device = Emulator::device(3);
    let out = Tensor::empty([64], DType::F32, &device).unwrap();
    let err = launch(&device, "selftest_divergent_barrier_f32", 1, 64, &[ptr(&out)]).unwrap_err().to_string();
    assert!(err.contains("deadlock"), "{err}");
    assert!(err.contains("selftest_divergent_barrier_f32"), "{err}");
}

#[test]
fn launch_mistakes_are_reported_with_the_kernel_name() {
    let device = Emulator::device(4);
    let out = Tensor::empty([64], DType::F32, &device).unwrap();
    let too_few = launch(&device, "vector_add_f32", 1, 64, &[ptr(&out)]).unwrap_err().to_string();
    assert!(too_few.contains("vector_add_f32 takes 4 arguments, the launch passed 1"), "{too_few}");
    let wrong_size = launch(&device, "vector_add_f32", 1, 64, &[ptr(&out), ptr(&out), ptr(&out), KernelArg::I64(64)])
        .unwrap_err()
        .to_string();
    assert!(wrong_size.contains("argument 3 is 4 bytes, the launch passed 8"), "{wrong_size}");
    let unknown = launch(&device, "no_such_kernel", 1, 1, &[]).unwrap_err().to_string();
    assert!(unknown.contains("no kernel named no_such_kernel"), "{unknown}");
    let too_big = launch(&device, "vector_add_f32", 1, 2048, &[ptr(&out), ptr(&out), ptr(&out), KernelArg::I32(0)])
        .unwrap_err()
        .to_string();
    assert!(too_big.contains("invalid launch shape"), "{too_big}");
}

#[test]
fn warp_shuffles_in_a_partial_warp_are_rejected() {
    // warp_sum_f32 shuffles with the full mask; a 48-thread block has a warp of 16.
    let device = Emulator::device(5);
    let x = Tensor::ones([48], DType::F32, &device).unwrap();
    let out = Tensor::empty([1], DType::F32, &device).unwrap();
    let err =
        launch(&device, "warp_sum_f32", 1, 48, &[ptr(&x), ptr(&out), KernelArg::I32(48)]).unwrap_err().to_string();
    assert!(err.contains("partial warp"), "{err}");
}

#[test]
fn many_barriers_give_the_same_result_as_the_cpu() {
    // selftest_barriers_f32: acc += buf[(t + r) % 256] where buf[t] = acc_t + r,
    // all threads in lockstep between barriers.
    let device = Emulator::device(6);
    let rounds = 4;
    let out = Tensor::empty([256], DType::F32, &device).unwrap();
    launch(&device, "selftest_barriers_f32", 1, 256, &[ptr(&out), KernelArg::I32(rounds)]).unwrap();
    let mut acc = [0.0f32; 256];
    for r in 0..rounds as usize {
        let buf: Vec<f32> = acc.iter().map(|a| a + r as f32).collect();
        for (t, a) in acc.iter_mut().enumerate() {
            *a += buf[(t + r) % 256];
        }
    }
    assert_eq!(out.to_vec_f32().unwrap(), acc.to_vec());
}

/// C = A·B in f64 from the bf16 values, and Σ|A||B| per element (the scale
/// of f32 rounding in the tensor-core sum).
fn product(a: &[f32], b_kn: &[f32], m: usize, n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut c, mut scale) = (vec![0.0; m * n], vec![0.0; m * n]);
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let x = a[i * k + p] as f64 * b_kn[p * n + j] as f64;
                c[i * n + j] += x;
                scale[i * n + j] += x.abs();
            }
        }
    }
    (c, scale)
}

/// Runs one of the tensor-core self-test kernels on fresh random bf16 inputs
/// (B given as [n, k] when `transposed`) and returns the largest error of C
/// relative to the f32 sum's scale.
fn mma_error(
    kernel: &'static str,
    transposed: bool,
    (m, n, k): (usize, usize, usize),
    seed: u64,
    extra: &[KernelArg],
) -> f64 {
    let device = Emulator::device(seed);
    let mut r = reclip_core::rng(seed);
    let a = Tensor::randn([m, k], 0.0, 1.0, DType::BF16, &device, &mut r).unwrap();
    let b_kn = Tensor::randn([k, n], 0.0, 1.0, DType::BF16, &device, &mut r).unwrap();
    let b = if transposed { b_kn.transpose(0, 1).unwrap().contiguous().unwrap() } else { b_kn.clone() };
    let c = Tensor::empty([m, n], DType::F32, &device).unwrap();
    let dims = [m, n, k].map(|d| KernelArg::I32(d as i32));
    let mut args = vec![ptr(&a), ptr(&b), ptr(&c), dims[0], dims[1], dims[2]];
    args.extend_from_slice(extra);
    launch(&device, kernel, 1, 32, &args).unwrap();
    let (want, scale) = product(&a.to_vec_f32().unwrap(), &b_kn.to_vec_f32().unwrap(), m, n, k);
    let got = c.to_vec_f32().unwrap();
    got.iter()
        .zip(want.iter().zip(&scale))
        .map(|(&g, (&w, &s))| (g as f64 - w).abs() / s.max(1e-30))
        .fold(0.0, f64::max)
}

#[test]
fn tensor_core_products_match_a_plain_matrix_product() {
    // ldmatrix x4 for A; x2 for Bᵀ (nt); x4.trans and, for the odd last
    // 8-column tile, x2.trans for B (nn).
    for (seed, shape) in [(1, (16, 8, 16)), (2, (48, 40, 32)), (3, (64, 64, 64)), (4, (32, 24, 48))] {
        for (kernel, transposed) in [("selftest_mma_nt_bf16", true), ("selftest_mma_nn_bf16", false)] {
            let err = mma_error(kernel, transposed, shape, seed, &[]);
            assert!(err < 1e-5, "{kernel} {shape:?}: relative error {err}");
        }
    }
}

#[test]
fn fragments_in_the_documented_layout_multiply_and_a_wrong_layout_is_caught() {
    for (seed, shape) in [(5, (16, 8, 16)), (6, (32, 16, 32))] {
        let by_hand = |swap: i32| mma_error("selftest_mma_by_hand_bf16", true, shape, seed, &[KernelArg::I32(swap)]);
        let right = by_hand(0);
        assert!(right < 1e-5, "fragments built by the PTX ISA's layout: relative error {right}");
        let wrong = by_hand(1);
        assert!(wrong > 0.05, "the swapped registers went unnoticed: relative error {wrong}");
    }
}

#[test]
fn ldmatrix_from_global_memory_is_rejected() {
    let device = Emulator::device(7);
    let x = Tensor::zeros([256], DType::BF16, &device).unwrap();
    let out = Tensor::empty([32], DType::F32, &device).unwrap();
    let err = launch(&device, "selftest_ldmatrix_global_bf16", 1, 32, &[ptr(&x), ptr(&out)]).unwrap_err().to_string();
    assert!(err.contains("not in shared memory"), "{err}");
}
