//! The demonstration kernels (kernels/demo.cu) on the device under test
//! against CPU references, over several launch shapes. Each kernel is wrapped
//! as a [`DeviceOp`], its CPU reference beside its launch, as the crates' ops are.

use reclip_core::gpu::ptr;
use reclip_core::{DType, Device, DeviceOp, GpuDevice, KernelArg, Launch, Real, Result, Tensor, bf16};
use reclip_testkit::{compare_with_cpu, randn, test_device};

fn gpu(t: &Tensor) -> &GpuDevice {
    t.device().gpu().expect("device tensor")
}

fn suffix(dtype: DType) -> &'static str {
    if dtype == DType::BF16 { "bf16" } else { "f32" }
}

/// `a + b` by the demo kernel, in a launch of `blocks` × `threads`.
struct VectorAdd<'a> {
    a: &'a Tensor,
    b: &'a Tensor,
    blocks: u32,
    threads: u32,
}

impl DeviceOp for VectorAdd<'_> {
    type Output = Tensor;
    const NAME: &'static str = "vector_add";

    fn cpu<T: Real>(self) -> Result<Tensor> {
        self.a.add(self.b)
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        let a = self.a;
        let out = Tensor::empty(a.shape().clone(), a.dtype(), a.device())?;
        let kernel = if a.dtype() == DType::BF16 { "vector_add_bf16" } else { "vector_add_f32" };
        let args = [ptr(a)?, ptr(self.b)?, ptr(&out)?, KernelArg::I32(a.elem_count() as i32)];
        device.launch(&Launch::linear(kernel, self.blocks, self.threads, &args))?;
        Ok(out)
    }
}

/// Per-block partial sums of a grid-stride loop, as both reduction kernels
/// (`kernel` is "block" or "warp") compute them.
struct PartialSums<'a> {
    x: &'a Tensor,
    kernel: &'a str,
    blocks: u32,
    threads: u32,
}

impl DeviceOp for PartialSums<'_> {
    type Output = Tensor;
    const NAME: &'static str = "partial_sums";

    /// Accumulates in f32 as the kernels do, whatever `T` is.
    fn cpu<T: Real>(self) -> Result<Tensor> {
        let (blocks, threads) = (self.blocks as usize, self.threads as usize);
        let v = self.x.to_vec_f64()?;
        let mut p = vec![0.0f32; blocks];
        for (i, &xi) in v.iter().enumerate() {
            p[(i / threads) % blocks] += xi as f32;
        }
        Tensor::from_vec(p, [blocks], &Device::Cpu)
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        let x = self.x;
        let out = Tensor::empty([self.blocks as usize], DType::F32, x.device())?;
        let args = [ptr(x)?, ptr(&out)?, KernelArg::I32(x.elem_count() as i32)];
        let name = match (self.kernel, x.dtype()) {
            ("block", DType::BF16) => "block_sum_bf16",
            ("block", _) => "block_sum_f32",
            (_, DType::BF16) => "warp_sum_bf16",
            _ => "warp_sum_f32",
        };
        let shared = if self.kernel == "block" { self.threads * 4 } else { 0 };
        let launch = Launch { shared_bytes: shared, ..Launch::linear(name, self.blocks, self.threads, &args) };
        device.launch(&launch)?;
        Ok(out)
    }
}

#[test]
fn vector_add_matches_cpu_for_several_launch_shapes() {
    for dtype in [DType::F32, DType::BF16] {
        for (n, blocks, threads) in [(1, 1, 32), (1000, 3, 128), (4099, 7, 256), (777, 1, 1024), (64, 64, 1)] {
            let a = randn(&[n], dtype, 1);
            let b = randn(&[n], dtype, 2);
            compare_with_cpu(&format!("vector_add_{} n={n} {blocks}x{threads}", suffix(dtype)), &[&a, &b], |t| {
                Ok(vec![VectorAdd { a: &t[0], b: &t[1], blocks, threads }.run(&t[0])?])
            });
        }
    }
}

#[test]
fn block_and_warp_reductions_match_cpu() {
    for kernel in ["block", "warp"] {
        for dtype in [DType::F32, DType::BF16] {
            for (n, blocks, threads) in [(5000, 4, 256), (100, 2, 32), (3333, 3, 1024), (1, 1, 64)] {
                let x = randn(&[n], dtype, 3);
                compare_with_cpu(&format!("{kernel}_sum_{} n={n} {blocks}x{threads}", suffix(dtype)), &[&x], |t| {
                    Ok(vec![PartialSums { x: &t[0], kernel, blocks, threads }.run(&t[0])?])
                });
            }
        }
    }
}

#[test]
fn bf16_round_trip_rounds_to_nearest_even() {
    let specials = [
        0.0f32,
        -0.0,
        1.0,
        1.0 + 1.0 / 256.0,        // a tie: rounds down to even
        1.0 + 3.0 / 256.0,        // a tie: rounds up to even
        1.0 + 1.0 / 256.0 + 1e-7, // just above a tie
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX, // rounds up to infinity
        1e-40,    // subnormal
        -2.5,
        65504.0,
    ];
    let mut values: Vec<f32> = specials.to_vec();
    values.extend(randn(&[1000], DType::F32, 4).to_vec_f32().unwrap().iter().map(|v| v * 1e3));
    let n = values.len();
    let device = test_device();
    let x = Tensor::from_vec(values.clone(), [n], &device).unwrap();
    let as_bf16 = Tensor::empty([n], DType::BF16, &device).unwrap();
    let back = Tensor::empty([n], DType::F32, &device).unwrap();
    let args = [
        KernelArg::Ptr(x.gpu_ptr().unwrap()),
        KernelArg::Ptr(as_bf16.gpu_ptr().unwrap()),
        KernelArg::Ptr(back.gpu_ptr().unwrap()),
        KernelArg::I32(n as i32),
    ];
    gpu(&x).launch(&Launch::linear("bf16_round_trip_f32", 2, 128, &args)).unwrap();
    let bits = as_bf16.to_vec::<bf16>().unwrap();
    let back = back.to_vec_f32().unwrap();
    for (i, &v) in values.iter().enumerate() {
        let want = bf16::from_f32(v);
        assert_eq!(bits[i].to_bits(), want.to_bits(), "bf16({v:e})");
        assert_eq!(back[i].to_bits(), want.to_f32().to_bits(), "back({v:e})");
    }
    // NaN stays NaN.
    let nan = Tensor::from_vec(vec![f32::NAN; 32], [32], &device).unwrap();
    let out = Tensor::empty([32], DType::BF16, &device).unwrap();
    let back = Tensor::empty([32], DType::F32, &device).unwrap();
    let args = [
        KernelArg::Ptr(nan.gpu_ptr().unwrap()),
        KernelArg::Ptr(out.gpu_ptr().unwrap()),
        KernelArg::Ptr(back.gpu_ptr().unwrap()),
        KernelArg::I32(32),
    ];
    gpu(&nan).launch(&Launch::linear("bf16_round_trip_f32", 1, 32, &args)).unwrap();
    assert!(back.to_vec_f32().unwrap().iter().all(|v| v.is_nan()));
}
