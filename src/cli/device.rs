//! `--device` and `--tf32`, shared by every command that computes, and
//! `reclip device`: a few-second check that a device runs reclip's kernels
//! and GEMMs correctly, before an hour of training finds out.

use anyhow::{Context, bail};
use clap::Args;
use reclip_core::{DType, Device, Tensor, rng};
use reclip_cuda::{DeviceChoice, select_device};
use std::time::Instant;

#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// cpu, cuda or auto (the GPU if one can be opened; otherwise the CPU,
    /// saying why when a CUDA driver is installed).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// f32 matrix products on the GPU in TF32 (faster, about 1e-3 relative
    /// error); off: f32 means f32. bf16 precision is unaffected.
    #[arg(long)]
    pub tf32: bool,
}

impl DeviceArgs {
    /// The device asked for. `auto` falling back to the CPU although a CUDA
    /// driver is installed says so on stderr, in one line.
    pub fn open(&self) -> anyhow::Result<Device> {
        self.open_at(0)
    }

    /// The device asked for; a GPU, the one of index `ordinal` (a rank's
    /// local rank: one GPU per rank).
    pub fn open_at(&self, ordinal: usize) -> anyhow::Result<Device> {
        let choice: DeviceChoice = self.device.parse().map_err(anyhow::Error::msg).context("--device")?;
        let selection =
            select_device(choice, ordinal, self.tf32).with_context(|| format!("--device {}", self.device))?;
        if let Some(reason) = selection.cpu_fallback {
            eprintln!("reclip: --device auto: using the CPU: {reason}");
        }
        Ok(selection.device)
    }
}

#[derive(Args)]
pub struct DeviceCheckArgs {
    #[command(flatten)]
    device: DeviceArgs,
}

/// Opens the device, runs a fill and an elementwise kernel and one GEMM in
/// each precision, reads them back and compares them with the CPU.
pub fn run(args: DeviceCheckArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let device = args.device.open()?;
    let mut checks = Vec::new();
    let mut r = rng(1);
    // Odd sizes: no tile of any kernel or GEMM fits them exactly.
    let x = Tensor::randn([37, 53], 0.0, 1.0, DType::F32, &Device::Cpu, &mut r)?;
    let y = Tensor::randn([53, 29], 0.0, 1.0, DType::F32, &Device::Cpu, &mut r)?;
    let kernel = |d: &Device| -> anyhow::Result<Tensor> {
        Ok(Tensor::full(0.5, [37, 53], DType::F32, d)?.mul(&x.to_device(d)?)?.affine(2.0, 1.0)?)
    };
    checks.push(("kernels", agreement(&kernel(&Device::Cpu)?, &kernel(&device)?, 1e-6)?));
    for (dtype, tol) in [(DType::F32, if args.device.tf32 { 2e-3 } else { 1e-5 }), (DType::BF16, 2e-2)] {
        let gemm = |d: &Device| -> anyhow::Result<Tensor> {
            let (a, b) = (x.to_dtype(dtype)?.to_device(d)?, y.to_dtype(dtype)?.to_device(d)?);
            Ok(a.matmul(&b)?)
        };
        let name = if dtype == DType::F32 { "GEMM f32" } else { "GEMM bf16" };
        checks.push((name, agreement(&gemm(&Device::Cpu)?, &gemm(&device)?, tol)?));
    }
    device.synchronize()?;
    let driver = driver_line(&device);
    let report: Vec<String> = checks.iter().map(|(name, err)| format!("{name} {err:.1e}")).collect();
    println!(
        "{}{driver}: agrees with the CPU (max relative error: {}) in {:.2} s",
        device.name(),
        report.join(", "),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The largest |got − expected| / max(|expected|, 1); an error above `tol`.
fn agreement(expected: &Tensor, got: &Tensor, tol: f64) -> anyhow::Result<f64> {
    let (e, g) = (expected.to_vec_f64()?, got.to_vec_f64()?);
    let error = |(a, b): (&f64, &f64)| {
        let d = (a - b).abs() / a.abs().max(1.0);
        if d.is_nan() { f64::INFINITY } else { d }
    };
    let worst = e.iter().zip(&g).map(error).fold(0.0, f64::max);
    if worst > tol {
        bail!("{} disagrees with the CPU: max relative error {worst:.2e} (allowed {tol:.0e})", got.device().name());
    }
    Ok(worst)
}

fn driver_line(device: &Device) -> String {
    if device.is_cpu() {
        return String::new();
    }
    #[cfg(feature = "cuda")]
    if let Ok(v) = reclip_cuda::driver_version() {
        return format!(", driver CUDA {v}");
    }
    String::new()
}
