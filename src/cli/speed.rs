//! `reclip speed`: training throughput of a model on a device at several
//! image sizes — images per second, achieved TFLOP/s (open_clip's FLOPs
//! convention, training = 3× forward) and model FLOPs utilisation against the
//! device's peak. Inputs are random images and token ids: this measures the
//! model, not data loading (`cargo bench --bench data_decode` does that).
//!
//! `--roofline` runs nothing: it prints, for an H200, every launch of one
//! bf16 training step with its FLOPs, bytes and floor, the step's floor, and
//! a predicted step time and MFU (`reclip_model::roofline`).

use super::device::DeviceArgs;
use anyhow::Context;
use clap::Args;
use reclip_core::{DType, Device, Tensor, rng};
use reclip_model::roofline::{
    self, ASSUMED, H200_BF16_FLOPS, H200_HBM_BYTES_PER_S, H200_PCIE_BYTES_PER_S, Phase, Roofline,
};
use reclip_model::{Clip, ModelConfig, flops, memory};
use reclip_train::{AdamW, AdamWConfig, CudaGraphs, GraphStep};
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
    /// auto (the step recorded once as a CUDA graph and replayed, on a GPU,
    /// as `reclip train` runs it) or off (plain kernel launches).
    #[arg(long, default_value = "auto")]
    cuda_graphs: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Run nothing: the floor of one bf16 step on an H200, launch by launch,
    /// and the step time and MFU predicted from it.
    #[arg(long, conflicts_with_all = ["steps", "precision", "peak_tflops", "device", "tf32"])]
    roofline: bool,
}

/// NVIDIA's dense bf16 datasheet peak of the H200 (SXM), which the
/// roofline's MFU is stated against.
const H200_PEAK_TFLOPS: f64 = 989.0;

/// Dense bf16 tensor-core peaks from NVIDIA's datasheets (SXM parts).
fn known_peak(device_name: &str) -> Option<f64> {
    [("H200", H200_PEAK_TFLOPS), ("H100", 989.0), ("A100", 312.0)]
        .iter()
        .find(|(n, _)| device_name.contains(n))
        .map(|&(_, p)| p)
}

pub fn run(args: SpeedArgs) -> anyhow::Result<()> {
    let cfg = ModelConfig::load(&args.model).with_context(|| format!("--model {}", args.model))?;
    let text_len = super::numbers::text_len(args.text_len, cfg.text_cfg.context_length)?;
    super::numbers::contrastive_batch(args.batch_size)?;
    let cuda_graphs: CudaGraphs = args.cuda_graphs.parse().map_err(|e| anyhow::anyhow!("--cuda-graphs: {e}"))?;
    if args.roofline {
        return print_roofline(&args, &cfg, text_len);
    }
    let device = args.device.open()?;
    let dtype = super::train::precision(&args.precision, &device)?;
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
        // uploads it, as training does. The warm-up steps are a plain one
        // and the one recorded, so that the timed ones are replays.
        let mut steps = match cuda_graphs {
            CudaGraphs::Auto => GraphStep::new(&device),
            CudaGraphs::Off => GraphStep::plain("--cuda-graphs off"),
        };
        let mut timed = 0.0;
        for step in 0..args.steps + 3 {
            device.synchronize()?;
            let t0 = Instant::now();
            steps.step(&clip, &mut optimizer, &images, &ids, dtype, 1e-4, None)?;
            device.synchronize()?;
            if step >= 3 {
                timed += t0.elapsed().as_secs_f64();
            }
            if let Some(notice) = steps.take_notice() {
                eprintln!("{notice}");
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
            "cuda_graphs": steps.used(),
        }));
    }
    if args.json {
        let out = serde_json::json!({"model": args.model, "device": device.name(), "precision": dtype.name(), "batch_size": args.batch_size, "text_len": text_len, "steps": args.steps, "peak_tflops": peak, "rows": rows});
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

/// `--roofline`: one table a size, its totals and prediction, then the assumptions.
fn print_roofline(args: &SpeedArgs, cfg: &ModelConfig, text_len: usize) -> anyhow::Result<()> {
    let peak = H200_PEAK_TFLOPS * 1e12;
    let mut steps = Vec::new();
    for &size in &args.image_size {
        let step = roofline::training_step(cfg, size, args.batch_size, text_len)
            .with_context(|| format!("--model {} --image-size {size}", args.model))?;
        steps.push(step);
    }
    if args.json {
        let sizes: Vec<_> = steps.iter().map(|s| roofline_json(s, peak)).collect();
        let out = serde_json::json!({
            "model": args.model,
            "device": "H200 (computed, not measured)",
            "precision": "bf16",
            "batch_size": args.batch_size,
            "text_len": text_len,
            "bf16_flops": H200_BF16_FLOPS,
            "hbm_bytes_per_s": H200_HBM_BYTES_PER_S,
            "pcie_bytes_per_s": H200_PCIE_BYTES_PER_S,
            "peak_tflops": H200_PEAK_TFLOPS,
            "assumptions": ASSUMED,
            "sizes": sizes,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for step in &steps {
        print_table(&args.model, step, peak);
    }
    let a = &ASSUMED;
    println!(
        "Floor: max(FLOPs / {:.0} TFLOP/s, bytes / {:.1} TB/s), both measured on an H200; uploads at {:.0} GB/s (PCIe Gen5 x16, specified).",
        H200_BF16_FLOPS / 1e12,
        H200_HBM_BYTES_PER_S / 1e12,
        H200_PCIE_BYTES_PER_S / 1e9
    );
    println!(
        "Predicted (assumed, not measured; reclip_model::roofline::ASSUMED): GEMMs at {:.0}% of the FLOP rate, attention {:.0}%, f32 on CUDA cores {:.0}%; memory traffic at {:.0}% of the bandwidth, uploads {:.0}%; {:.1} µs a launch replayed in a CUDA graph, {:.1} µs a plain launch. MFU: open_clip's FLOPs (3 × forward) against {H200_PEAK_TFLOPS:.0} TFLOP/s.",
        100.0 * a.gemm,
        100.0 * a.attention,
        100.0 * a.cuda_cores,
        100.0 * a.memory,
        100.0 * a.upload,
        1e6 * a.launch_overhead_s,
        1e6 * a.plain_launch_overhead_s
    );
    Ok(())
}

fn print_table(model: &str, step: &Roofline, peak: f64) {
    println!(
        "{model} at {} px ({} image tokens), batch {}, text length {}, bf16, one step on an H200: computed, not measured",
        step.image_size, step.image_tokens, step.batch_size, step.text_length
    );
    println!(
        "{:<5} {:<5} {:<28} {:<36} {:>5} {:>10} {:>10} {:>10}  bound",
        "phase", "tower", "layer", "kernel or GEMM", "count", "GFLOP", "MB", "floor µs"
    );
    for r in &step.rows {
        println!(
            "{:<5} {:<5} {:<28} {:<36} {:>5} {:>10.3} {:>10.2} {:>10.1}  {}",
            r.phase.name(),
            r.tower.name(),
            r.layer,
            r.kernel,
            r.count,
            r.flops() / 1e9,
            r.bytes / 1e6,
            1e6 * r.floor_s(),
            r.bound().name()
        );
    }
    let ms = |s: f64| 1e3 * s;
    let p = step.predict(&ASSUMED);
    println!(
        "floor: {:.2} ms a step (fwd {:.2}, bwd {:.2}, opt {:.2}); {} launches; {:.2} TFLOP (open_clip's training FLOPs: {:.2}); {:.2} GB moved",
        ms(step.floor_s()),
        ms(step.phase_floor_s(Phase::Fwd)),
        ms(step.phase_floor_s(Phase::Bwd)),
        ms(step.phase_floor_s(Phase::Opt)),
        step.launches(),
        step.flops() / 1e12,
        step.model_flops / 1e12,
        step.bytes() / 1e9
    );
    let plain = step.predict(&ASSUMED.with_plain_launches());
    println!(
        "predicted: {:.2} ms a step ({:.2} of work + {:.2} of launch overhead, replayed as a CUDA graph; {:.2} ms with plain launches), {:.0} images/s, MFU {:.1}% (at the floor {:.1}%)\n",
        ms(p.step_s),
        ms(p.work_s),
        ms(p.launch_overhead_s),
        ms(plain.step_s),
        step.batch_size as f64 / p.step_s,
        100.0 * step.mfu(p.step_s, peak),
        100.0 * step.mfu(step.floor_s(), peak)
    );
}

fn roofline_json(step: &Roofline, peak: f64) -> serde_json::Value {
    let p = step.predict(&ASSUMED);
    let rows: Vec<_> = step
        .rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "phase": r.phase,
                "tower": r.tower,
                "layer": r.layer,
                "kernel": r.kernel,
                "kind": r.kind,
                "count": r.count,
                "gflop": r.flops() / 1e9,
                "matmul_gflop": r.matmul_flops / 1e9,
                "mb": r.bytes / 1e6,
                "floor_us": 1e6 * r.floor_s(),
                "bound": r.bound(),
                "predicted_us": 1e6 * r.predicted_s(&ASSUMED),
            })
        })
        .collect();
    serde_json::json!({
        "image_size": step.image_size,
        "tokens": step.image_tokens,
        "launches": step.launches(),
        "gflop": step.flops() / 1e9,
        "open_clip_gflop": step.model_flops / 1e9,
        "gb": step.bytes() / 1e9,
        "floor_step_ms": 1e3 * step.floor_s(),
        "floor_ms_by_phase": {
            "fwd": 1e3 * step.phase_floor_s(Phase::Fwd),
            "bwd": 1e3 * step.phase_floor_s(Phase::Bwd),
            "opt": 1e3 * step.phase_floor_s(Phase::Opt),
        },
        "predicted_step_ms": 1e3 * p.step_s,
        "predicted_work_ms": 1e3 * p.work_s,
        "launch_overhead_ms": 1e3 * p.launch_overhead_s,
        "predicted_step_ms_plain_launches": 1e3 * step.predict(&ASSUMED.with_plain_launches()).step_s,
        "predicted_images_per_second": step.batch_size as f64 / p.step_s,
        "mfu_predicted": step.mfu(p.step_s, peak),
        "mfu_at_floor": step.mfu(step.floor_s(), peak),
        "rows": rows,
    })
}
