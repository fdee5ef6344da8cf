//! The CPU emulator's cost: one 256-thread block through 8 barriers
//! (selftest_barriers_f32 with 4 rounds of 2 barriers), the figure that
//! decides how large kernel tests can be.

use criterion::{Criterion, criterion_group, criterion_main};
use reclip::core::{DType, KernelArg, Launch, Tensor};
use reclip_emu::Emulator;

fn barriers(c: &mut Criterion) {
    let device = Emulator::device(1);
    let out = Tensor::empty([256], DType::F32, &device).unwrap();
    let args = [KernelArg::Ptr(out.gpu_ptr().unwrap()), KernelArg::I32(4)];
    let gpu = device.gpu().unwrap().clone();
    c.bench_function("emulator/256_threads_8_barriers", |b| {
        b.iter(|| gpu.launch(&Launch::linear("selftest_barriers_f32", 1, 256, &args)).unwrap())
    });
}

criterion_group!(benches, barriers);
criterion_main!(benches);
