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
