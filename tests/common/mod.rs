//! What the end-to-end tests share.
#![allow(dead_code)] // each test file uses a different subset

pub mod emulated;

use std::path::Path;

/// A model small enough for a training run of a few seconds on two cores.
pub const TINY: &str = r#"{
  "embed_dim": 16,
  "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 32, "mlp_ratio": 2.0},
  "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1, "mlp_ratio": 2.0}
}"#;

/// Writes `shards` WebDataset shards `00.tar`, `01.tar`, … of `per_shard`
/// 16-px PNGs with captions into `dir`, and returns their shard list.
pub fn write_shards(dir: &Path, shards: usize, per_shard: usize) -> String {
    std::fs::create_dir_all(dir).unwrap();
    for s in 0..shards {
        let mut builder = tar::Builder::new(Vec::new());
        for i in 0..per_shard {
            let n = (s * per_shard + i) as u32;
            let image = image::RgbImage::from_fn(16, 16, |x, y| {
                image::Rgb([(n * 37 % 256) as u8, (x * 16) as u8, (y * 16 + n % 16) as u8])
            });
            let mut png = std::io::Cursor::new(Vec::new());
            image.write_to(&mut png, image::ImageFormat::Png).unwrap();
            let caption = format!("image number {n} in shard {s}").into_bytes();
            for (suffix, data) in [("png", png.into_inner()), ("txt", caption)] {
                let mut header = tar::Header::new_gnu();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                builder.append_data(&mut header, format!("{s:02}{i:04}.{suffix}"), data.as_slice()).unwrap();
            }
        }
        std::fs::write(dir.join(format!("{s:02}.tar")), builder.into_inner().unwrap()).unwrap();
    }
    format!("{}/{{00..{:02}}}.tar", dir.display(), shards - 1)
}
