//! `reclip speed`: training throughput of a model on a device at several
//! image sizes — images per second, achieved TFLOP/s (open_clip's FLOPs
//! convention, training = 3× forward) and model FLOPs utilisation against the
//! device's peak. Inputs are random images and token ids: this measures the
//! model, not data loading (`cargo bench --bench data_decode` does that).

use super::device::DeviceArgs;
use anyhow::Context;
use clap::Args;
use reclip_core::{DType, Device, Tensor, rng};
use reclip_model::{Clip, ModelConfig, flops, memory};
use reclip_train::{AdamW, AdamWConfig, train_step};
use std::time::Instant;

#[derive(Args)]
pub struct SpeedArgs {
    /// A preset or an open_clip JSON config.
    #[arg(long, default_value = "ViT-B-16")]
    model: String,
    /// Image sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,224")]
    image_size: Vec<usize>,
    /// Text length (default: the model's context length).
    #[arg(long)]
    text_len: Option<usize>,
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Timed steps per size, after three warm-up steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    #[command(flatten)]
    device: DeviceArgs,
    /// f32 or bf16 (default: bf16 on a GPU, f32 on the CPU).
    #[arg(long)]
    precision: Option<String>,
    /// Peak TFLOP/s for the utilisation figure (default: the GPU's dense bf16
    /// peak if reclip knows it).
    #[arg(long)]
    peak_tflops: Option<f64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Dense bf16 tensor-core peaks from NVIDIA's datasheets (SXM parts).
fn known_peak(device_name: &str) -> Option<f64> {
    [("H200", 989.0), ("H100", 989.0), ("A100", 312.0)].iter().find(|(n, _)| device_name.contains(n)).map(|&(_, p)| p)
}

pub fn run(args: SpeedArgs) -> anyhow::Result<()> {
    let device = args.device.open()?;
    let dtype = super::train::precision(&args.precision, &device)?;
    let cfg = ModelConfig::load(&args.model).with_context(|| format!("--model {}", args.model))?;
    let text_len = super::numbers::text_len(args.text_len, cfg.text_cfg.context_length)?;
    super::numbers::contrastive_batch(args.batch_size)?;
    if args.steps == 0 {
        anyhow::bail!("--steps 0: expected at least 1 timed step");
    }
    if let Some(p) = args.peak_tflops.filter(|p| !(p.is_finite() && *p > 0.0)) {
        anyhow::bail!("--peak-tflops {p}: expected a positive number");
    }
    let peak = args.peak_tflops.or_else(|| known_peak(&device.name()));
    let mut rows = Vec::new();
    for &size in &args.image_size {
        cfg.vision_cfg.grid_size(size).with_context(|| format!("--image-size {size}"))?;
        let estimate = |c: &ModelConfig| memory::training_bytes(c, args.batch_size, size, text_len, dtype);
        let what = format!("training {} pairs a batch at {size} px (--batch-size, --image-size)", args.batch_size);
        memory::check_fits_on(&cfg, estimate, &device, &what).with_context(|| format!("--model {}", args.model))?;
        let mut clip = Clip::new(cfg.clone(), 0, &device)?;
        clip.set_image_size(size)?;
        let mut optimizer = AdamW::new(&clip.params(), AdamWConfig::default())?;
        let mut r = rng(size as u64);
        let images = Tensor::randn([args.batch_size, 3, size, size], 0.0, 1.0, DType::F32, &Device::Cpu, &mut r)?;
        let ids: Vec<u32> = (0..args.batch_size * text_len).map(|i| 1 + (i as u32 * 7919) % 49000).collect();
        let ids = Tensor::from_vec(ids, [args.batch_size, text_len], &Device::Cpu)?;
        // The batch stays on the host, as the loader's does: each step
        // uploads it, as training does.
        let mut timed = 0.0;
        for step in 0..args.steps + 3 {
            device.synchronize()?;
            let t0 = Instant::now();
            train_step(&clip, &mut optimizer, &images, &ids, dtype, 1e-4)?;
            device.synchronize()?;
            if step >= 3 {
                timed += t0.elapsed().as_secs_f64();
            }
        }
        let f = flops::model(&cfg, size, text_len)?;
        let ips = (args.steps * args.batch_size) as f64 / timed;
        let tflops = ips * f.training_gflops / 1e3;
        rows.push(serde_json::json!({
            "image_size": size,
            "tokens": f.image.tokens,
            "images_per_second": ips,
            "step_ms": 1e3 * timed / args.steps as f64,
            "training_gflops_per_sample": f.training_gflops,
            "tflops": tflops,
            "mfu": peak.map(|p| tflops / p),
        }));
    }
    if args.json {
        let out = serde_json::json!({"model": args.model, "device": device.name(), "precision": dtype.name(), "batch_size": args.batch_size, "text_len": text_len, "peak_tflops": peak, "rows": rows});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{} on {} ({}), batch {}, text length {text_len}",
        args.model,
        device.name(),
        dtype.name(),
        args.batch_size
    );
    println!("{:>6} {:>7} {:>10} {:>9} {:>9} {:>7}", "size", "tokens", "images/s", "step ms", "TFLOP/s", "MFU");
    for r in &rows {
        let number = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
        let mfu = r["mfu"].as_f64().map_or("-".to_string(), |m| format!("{:.1}%", 100.0 * m));
        println!(
            "{:>6} {:>7} {:>10.1} {:>9.1} {:>9.3} {:>7}",
            number("image_size"),
            number("tokens"),
            number("images_per_second"),
            number("step_ms"),
            number("tflops"),
            mfu
        );
    }
    if peak.is_none() {
        println!("(no peak known for this device: pass --peak-tflops for the utilisation)");
    }
    Ok(())
}
