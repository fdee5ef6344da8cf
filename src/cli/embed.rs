//! `reclip embed`: image and text features of a checkpoint, written to a
//! safetensors file (`image_features`, `text_features`: projected, before
//! normalisation), images preprocessed as for evaluation at the model's size.

use super::device::DeviceArgs;
use anyhow::Context;
use clap::Args;
use reclip_autograd::Tape;
use reclip_core::{Device, Tensor};
use reclip_data::{View, decode_view};
use reclip_model::{Clip, ModelConfig};
use reclip_tokenizer::ClipTokenizer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct EmbedArgs {
    /// Model config for a checkpoint that carries none (open_clip's): a preset or JSON file.
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    checkpoint: PathBuf,
    /// A folder of images (.jpg, .jpeg, .png), embedded in sorted order.
    #[arg(long)]
    images: Option<PathBuf>,
    /// A text file, one caption per line.
    #[arg(long)]
    texts: Option<PathBuf>,
    /// The safetensors file to write.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
    /// f32 or bf16 (default: bf16 on a GPU, f32 on the CPU).
    #[arg(long)]
    precision: Option<String>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
}

fn image_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("--images {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("--images {}", dir.display()))?;
    files.retain(|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
    });
    files.sort();
    if files.is_empty() {
        anyhow::bail!("--images {}: no .jpg, .jpeg or .png file", dir.display());
    }
    Ok(files)
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    if args.images.is_none() && args.texts.is_none() {
        anyhow::bail!("nothing to embed: give --images, --texts or both");
    }
    let device = args.device.open()?;
    let dtype = super::train::precision(&args.precision, &device)?;
    let config = args.model.as_deref().map(ModelConfig::load).transpose().context("--model")?;
    let clip = Clip::load(&args.checkpoint, config, &device).context("--checkpoint")?;
    let tape = Tape::no_grad();
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let mut meta = HashMap::new();
    if let Some(dir) = &args.images {
        let files = image_files(dir)?;
        let size = clip.image_size();
        let view = View::eval(size);
        let mut features = Vec::new();
        for chunk in files.chunks(args.batch_size.max(1)) {
            let mut pixels = vec![0f32; chunk.len() * 3 * size * size];
            for (i, path) in chunk.iter().enumerate() {
                let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
                let image = decode_view(&bytes, &view).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                image.normalise_into(&mut pixels[i * 3 * size * size..(i + 1) * 3 * size * size]);
            }
            let batch = Tensor::from_vec(pixels, [chunk.len(), 3, size, size], &Device::Cpu)?;
            features.push(clip.encode_image(&tape, &batch, dtype)?.into_tensor().to_device(&Device::Cpu)?);
        }
        tensors.push(("image_features".into(), Tensor::concat(&features.iter().collect::<Vec<_>>(), 0)?));
        let names: Vec<String> =
            files.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
        meta.insert("image_files".to_string(), serde_json::to_string(&names)?);
    }
    if let Some(path) = &args.texts {
        let text = std::fs::read_to_string(path).with_context(|| format!("--texts {}", path.display()))?;
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            anyhow::bail!("--texts {}: the file has no line", path.display());
        }
        let tokenizer = ClipTokenizer::new()?;
        let len = clip.config().text_cfg.context_length;
        let mut features = Vec::new();
        for chunk in lines.chunks(args.batch_size.max(1)) {
            let ids = Tensor::from_vec(tokenizer.tokenize_batch(chunk, len), [chunk.len(), len], &Device::Cpu)?;
            features.push(clip.encode_text(&tape, &ids, dtype)?.into_tensor().to_device(&Device::Cpu)?);
        }
        tensors.push(("text_features".into(), Tensor::concat(&features.iter().collect::<Vec<_>>(), 0)?));
    }
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_dtype(reclip_core::DType::F32)?)))
        .collect::<anyhow::Result<_>>()?;
    reclip_model::checkpoint::save(&args.out, &tensors, meta)
        .with_context(|| format!("--out {}", args.out.display()))?;
    for (n, t) in &tensors {
        println!("{n}: {}", t.shape());
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
