//! Helpers shared by the integration tests: photo-like images, file writers
//! and a caption encoder that needs no vocabulary.
#![allow(dead_code)] // each test file uses a different subset

use reclip_data::CaptionEncoder;
use std::path::Path;

/// Smooth multi-octave value noise, which compresses and decodes like a photo.
pub fn photo(width: u32, height: u32, seed: u32) -> image::RgbImage {
    let hash = |x: i32, y: i32, octave: u32| -> f32 {
        let mut v = (x as u32).wrapping_mul(374_761_393)
            ^ (y as u32).wrapping_mul(668_265_263)
            ^ seed.wrapping_mul(2_246_822_519)
            ^ octave.wrapping_mul(3_266_489_917);
        v = (v ^ (v >> 13)).wrapping_mul(1_274_126_177);
        ((v ^ (v >> 16)) & 0xffff) as f32 / 65535.0
    };
    image::RgbImage::from_fn(width, height, |x, y| {
        let rgb = [0u32, 1, 2].map(|channel| {
            let (mut value, mut amplitude, mut frequency) = (0.0, 0.5, 1.0 / 32.0);
            for octave in 0..6 {
                let (fx, fy) = (x as f32 * frequency, y as f32 * frequency);
                let (ix, iy) = (fx.floor() as i32, fy.floor() as i32);
                let (tx, ty) = (fx - ix as f32, fy - iy as f32);
                let o = octave * 3 + channel;
                let top = hash(ix, iy, o) * (1.0 - tx) + hash(ix + 1, iy, o) * tx;
                let bottom = hash(ix, iy + 1, o) * (1.0 - tx) + hash(ix + 1, iy + 1, o) * tx;
                value += amplitude * (top * (1.0 - ty) + bottom * ty);
                amplitude *= 0.55;
                frequency *= 2.0;
            }
            (value * 255.0).clamp(0.0, 255.0) as u8
        });
        image::Rgb(rgb)
    })
}

pub fn solid(width: u32, height: u32, rgb: [u8; 3]) -> image::RgbImage {
    image::RgbImage::from_pixel(width, height, image::Rgb(rgb))
}

pub fn jpeg_bytes(img: &image::RgbImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(img).unwrap();
    bytes
}

pub fn png_bytes(img: &image::DynamicImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A tar archive of `members` (name, data), as a WebDataset shard.
pub fn shard(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Token ids from word hashes, zero-padded or cut to the context length.
pub struct WordEncoder;

impl CaptionEncoder for WordEncoder {
    fn encode(&self, caption: &str, context_length: usize) -> Vec<u32> {
        let mut ids: Vec<u32> = caption
            .split_whitespace()
            .map(|w| w.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % 49_000 + 1)
            .take(context_length)
            .collect();
        ids.resize(context_length, 0);
        ids
    }
}

/// Mean absolute difference of two equally sized byte buffers.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).abs()).sum::<f64>() / a.len() as f64
}
