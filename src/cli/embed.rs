//! `reclip embed`: image and text features of a checkpoint, written to a
//! safetensors file (`image_features`, `text_features`: projected, before
//! normalisation), images preprocessed as for evaluation at the model's size.

use super::device::DeviceArgs;
use anyhow::Context;
use clap::Args;
use reclip_autograd::Tape;
use reclip_core::{Device, Tensor};
use reclip_data::{DataReport, Problem, ProblemKind, View, decode_view, read_image_file, read_text_file};
use reclip_model::{Clip, ModelConfig, memory};
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
    /// The safetensors file to write (never one of the inputs).
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    device: DeviceArgs,
    /// f32 or bf16 (default: bf16 on a GPU, f32 on the CPU).
    #[arg(long)]
    precision: Option<String>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
}

/// One image, read within reclip-data's limits and decoded for `view`.
fn load_image(path: &Path, view: &View) -> Result<reclip_data::Rgb8Image, Problem> {
    let bytes = read_image_file(path)?;
    decode_view(&bytes, view).map_err(|reason| Problem::new(ProblemKind::BadImage, path.display().to_string(), reason))
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

/// Whether `a` and `b` are one file (the same inode, whatever the paths).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Refuses an --out that would destroy something: an input of this command
/// (even with --overwrite), or any existing file without --overwrite.
fn check_out(args: &EmbedArgs, images: &[PathBuf]) -> anyhow::Result<()> {
    let out = &args.out;
    let Ok(metadata) = std::fs::metadata(out) else { return Ok(()) };
    let mut inputs: Vec<(&str, &Path)> = vec![("--checkpoint", &args.checkpoint)];
    inputs.extend(args.model.as_deref().map(|m| ("--model", Path::new(m))));
    inputs.extend(args.texts.as_deref().map(|t| ("--texts", t)));
    inputs.extend(images.iter().map(|i| ("--images", i.as_path())));
    if let Some((option, path)) = inputs.into_iter().find(|(_, path)| same_file(out, path)) {
        anyhow::bail!("--out {} is the {option} input {}: give another file to write", out.display(), path.display());
    }
    if metadata.is_dir() {
        anyhow::bail!("--out {} is a folder: give the safetensors file to write", out.display());
    }
    if !args.overwrite {
        anyhow::bail!("--out {} exists: pass --overwrite to replace it", out.display());
    }
    Ok(())
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    if args.images.is_none() && args.texts.is_none() {
        anyhow::bail!("nothing to embed: give --images, --texts or both");
    }
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size 0: expected at least 1 input per batch");
    }
    let files = args.images.as_deref().map(image_files).transpose()?;
    check_out(&args, files.as_deref().unwrap_or_default())?;
    let device = args.device.open()?;
    let dtype = super::train::precision(&args.precision, &device)?;
    let config = args.model.as_deref().map(ModelConfig::load).transpose().context("--model")?;
    let clip = Clip::load(&args.checkpoint, config, &device).context("--checkpoint")?;
    let (size, len) = (clip.image_size(), clip.config().text_cfg.context_length);
    let estimate = |cfg: &ModelConfig| memory::inference_bytes(cfg, args.batch_size, size, len, dtype);
    let what = format!("encoding {} inputs a batch at {size} px (--batch-size)", args.batch_size);
    memory::check_fits_on(clip.config(), estimate, &device, &what).context("--checkpoint")?;
    let tape = Tape::no_grad();
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let mut meta = HashMap::new();
    if let (Some(dir), Some(files)) = (&args.images, &files) {
        let size = clip.image_size();
        let view = View::eval(size);
        let mut report = DataReport::new(dir.display().to_string());
        let mut features = Vec::new();
        let mut embedded: Vec<&Path> = Vec::new();
        for chunk in files.chunks(args.batch_size) {
            let per_image = 3 * size * size;
            let mut pixels = Vec::with_capacity(chunk.len() * per_image);
            let mut rows = 0;
            for path in chunk {
                match load_image(path, &view) {
                    Ok(image) => {
                        pixels.resize((rows + 1) * per_image, 0.0);
                        image.normalise_into(&mut pixels[rows * per_image..]);
                        embedded.push(path);
                        rows += 1;
                    }
                    Err(problem) => report.record(problem),
                }
            }
            if rows > 0 {
                let batch = Tensor::from_vec(pixels, [rows, 3, size, size], &Device::Cpu)?;
                features.push(clip.encode_image(&tape, &batch, dtype)?.into_tensor().to_device(&Device::Cpu)?);
            }
        }
        println!("{report}");
        if features.is_empty() {
            anyhow::bail!("--images {}: no image could be read ({})", dir.display(), report.summary());
        }
        tensors.push(("image_features".into(), Tensor::concat(&features.iter().collect::<Vec<_>>(), 0)?));
        let names: Vec<String> =
            embedded.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
        meta.insert("image_files".to_string(), serde_json::to_string(&names)?);
    }
    if let Some(path) = &args.texts {
        let text = read_text_file(path).context("--texts")?;
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            anyhow::bail!("--texts {}: the file has no line", path.display());
        }
        let tokenizer = ClipTokenizer::new()?;
        let len = clip.config().text_cfg.context_length;
        let mut features = Vec::new();
        for chunk in lines.chunks(args.batch_size) {
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
