//! `reclip eval`: zero-shot top-1/top-5 and retrieval recall of a checkpoint.

use super::device::DeviceArgs;
use super::train::{CsvArgs, EvalSetArgs, eval_sets, precision};
use anyhow::Context;
use clap::Args;
use reclip_model::{Clip, ModelConfig, memory};
use reclip_tokenizer::ClipTokenizer;
use reclip_train::eval::Evaluator;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct EvalArgs {
    /// A checkpoint: reclip's, or open_clip's safetensors with --model.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Model config for a checkpoint that carries none (open_clip's): a preset or JSON file.
    #[arg(long)]
    model: Option<String>,
    /// The sets; without any, the built-in ones.
    #[command(flatten)]
    sets: EvalSetArgs,
    #[command(flatten)]
    csv: CsvArgs,
    /// Image size to evaluate at (default: the checkpoint's).
    #[arg(long)]
    image_size: Option<usize>,
    /// Text length (default: the model's context length).
    #[arg(long)]
    text_len: Option<usize>,
    #[command(flatten)]
    device: DeviceArgs,
    /// f32 or bf16 (default: bf16 on a GPU, f32 on the CPU).
    #[arg(long)]
    precision: Option<String>,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let device = args.device.open()?;
    let config = args.model.as_deref().map(ModelConfig::load).transpose().context("--model")?;
    let clip = Clip::load(&args.checkpoint, config, &device).context("--checkpoint")?;
    let image_size = args.image_size.unwrap_or(clip.image_size());
    clip.config().vision_cfg.grid_size(image_size).context("--image-size")?;
    let text_len = super::numbers::text_len(args.text_len, clip.config().text_cfg.context_length)?;
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size 0: expected at least 1 image per batch");
    }
    let precision = precision(&args.precision, &device)?;
    let estimate = |cfg: &ModelConfig| memory::inference_bytes(cfg, args.batch_size, image_size, text_len, precision);
    let what = format!("encoding {} images a batch at {image_size} px (--batch-size, --image-size)", args.batch_size);
    memory::check_fits_on(clip.config(), estimate, &device, &what).context("--checkpoint")?;
    let builtin = args.sets.eval_zero_shot.is_none() && args.sets.eval_retrieval.is_none();
    let (zero_shot, retrieval) = eval_sets(&args.sets, &args.csv, builtin, 0)?;
    let ev = Evaluator {
        clip: &clip,
        encoder: Arc::new(ClipTokenizer::new()?),
        dtype: precision,
        batch_size: args.batch_size,
        image_size,
        text_len,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let (zs, mut data): (Vec<_>, Vec<_>) =
        zero_shot.iter().map(|s| ev.zero_shot(s)).collect::<anyhow::Result<Vec<_>>>()?.into_iter().unzip();
    let (rt, rt_data): (Vec<_>, Vec<_>) = retrieval
        .iter()
        .map(|r| ev.retrieval(&r.name, r.data.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    data.extend(rt_data);
    if args.json {
        // Each set's problems, in the report's words (no problem: an empty list).
        let problems: Vec<Vec<String>> = data
            .iter()
            .map(|d| if d.is_clean() { Vec::new() } else { d.to_string().lines().map(String::from).collect() })
            .collect();
        let out = serde_json::json!({ "checkpoint": args.checkpoint, "image_size": image_size, "text_len": text_len, "zero_shot": zs, "retrieval": rt, "data_problems": problems });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{} at {image_size}px, text length {text_len}, on {}", args.checkpoint.display(), device);
    for z in &zs {
        println!(
            "zero-shot {} ({} classes, {} images): top-1 {:.1}%, top-5 {:.1}%",
            z.name,
            z.classes,
            z.images,
            100.0 * z.top1,
            100.0 * z.top5
        );
    }
    for r in &rt {
        let [a, b, c] = r.image_to_text.map(|x| 100.0 * x);
        let [d, e, f] = r.text_to_image.map(|x| 100.0 * x);
        println!(
            "retrieval {} ({} pairs): image→text R@1/5/10 {a:.1}/{b:.1}/{c:.1}%, text→image {d:.1}/{e:.1}/{f:.1}%",
            r.name, r.pairs
        );
    }
    for d in &data {
        println!("{d}");
    }
    Ok(())
}
