//! `reclip flops`: analytic GFLOPs per sample, in open_clip's convention.

use anyhow::Context;
use clap::Args;
use reclip_model::{ModelConfig, TowerFlops, flops};
use serde_json::json;

#[derive(Args)]
pub struct FlopsArgs {
    /// A preset name (e.g. ViT-B-16, reclip-tiny) or an open_clip model config JSON file.
    #[arg(long, default_value = "ViT-B-16")]
    model: String,
    /// Image sizes, comma-separated; the model's own by default.
    #[arg(long, value_delimiter = ',')]
    image_size: Vec<usize>,
    /// Text lengths, comma-separated; the model's context length by default.
    #[arg(long, value_delimiter = ',')]
    text_len: Vec<usize>,
    /// The image tower in training under FLIP's patch dropout at this share
    /// of patches dropped (0: none, as at evaluation).
    #[arg(long, default_value_t = 0.0)]
    patch_dropout: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn row(tower: &str, size: usize, f: &TowerFlops) -> serde_json::Value {
    json!({
        "tower": tower,
        "size": size,
        "tokens": f.tokens,
        "forward_gflops": f.forward_gflops,
        "training_gflops": f.training_gflops,
        "elementwise_forward_gflops": f.forward_elementwise_gflops,
        "matmul_flops": f.matmul,
        "elementwise_flops": f.elementwise,
    })
}

pub fn run(args: FlopsArgs) -> anyhow::Result<()> {
    let cfg = ModelConfig::load(&args.model).with_context(|| format!("--model {}", args.model))?;
    let sizes = if args.image_size.is_empty() { vec![cfg.vision_cfg.image_size] } else { args.image_size };
    let lens = if args.text_len.is_empty() { vec![cfg.text_cfg.context_length] } else { args.text_len };
    reclip_model::config::check_patch_dropout("--patch-dropout", args.patch_dropout)?;
    let mut rows = Vec::new();
    for &s in &sizes {
        let f =
            flops::image_tower_dropping(&cfg, s, args.patch_dropout).with_context(|| format!("--image-size {s}"))?;
        rows.push(("image", s, f));
    }
    for &l in &lens {
        let f = flops::text_tower(&cfg, l).with_context(|| format!("--text-len {l}"))?;
        rows.push(("text", l, f));
    }
    if args.json {
        let out = json!({
            "model": args.model,
            "patch_dropout": args.patch_dropout,
            "convention": "2 FLOPs per multiply-add; matmuls, patch-embedding convolution and both attention products; elementwise listed apart",
            "rows": rows.iter().map(|(t, s, f)| row(t, *s, f)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{}: GFLOPs per sample (2 FLOPs per multiply-add: matmuls, patch conv, attention products)", args.model);
    println!(
        "{:<6} {:>6} {:>7} {:>12} {:>12} {:>16}",
        "tower", "size", "tokens", "forward", "training", "elementwise fwd"
    );
    for (tower, size, f) in &rows {
        println!(
            "{:<6} {:>6} {:>7} {:>12.4} {:>12.4} {:>16.4}",
            tower, size, f.tokens, f.forward_gflops, f.training_gflops, f.forward_elementwise_gflops
        );
    }
    Ok(())
}
