//! Image decoding for one view. A JPEG whose crop is at least twice the output
//! size on both sides is decoded at 1/2, 1/4 or 1/8 scale by jpeg-decoder's
//! reduced inverse DCTs (the largest reduction that still leaves at least
//! `size` pixels across the crop), so far fewer pixels are produced and then
//! resized. PNGs are decoded in full by the `image` crate. Grayscale, 16-bit
//! and CMYK become 8-bit RGB; alpha is dropped as PIL's `convert("RGB")` does.

use crate::resize::crop_resize;
use crate::{CropBox, Rgb8Image, View};
use jpeg_decoder::PixelFormat;

const JPEG_MAGIC: &[u8] = &[0xff, 0xd8, 0xff];
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Decodes `bytes` (JPEG or PNG, told apart by content) into the view's
/// `size` x `size` RGB image. The error is a reason for a report.
pub fn decode_view(bytes: &[u8], view: &View) -> Result<Rgb8Image, String> {
    if bytes.starts_with(JPEG_MAGIC) {
        decode_jpeg(bytes, view)
    } else if bytes.starts_with(PNG_MAGIC) {
        decode_png(bytes, view)
    } else if bytes.is_empty() {
        Err("empty file".into())
    } else {
        Err("not a JPEG or PNG image".into())
    }
}

/// The DCT scale denominator (1, 2, 4 or 8) for cutting `crop` to `size`.
pub fn jpeg_scale_denominator(crop: &CropBox, size: usize) -> usize {
    let short = crop.width.min(crop.height);
    [8, 4, 2].into_iter().find(|&d| short / d as f64 >= size as f64).unwrap_or(1)
}

fn decode_jpeg(bytes: &[u8], view: &View) -> Result<Rgb8Image, String> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(|e| format!("invalid JPEG: {e}"))?;
    let info = decoder.info().ok_or("invalid JPEG: no frame header")?;
    let (width, height) = (info.width as usize, info.height as usize);
    if width == 0 || height == 0 {
        return Err(format!("JPEG has an empty size {width}x{height}"));
    }
    let crop = view.crop(width as f64, height as f64);
    let denominator = if view.reduced_jpeg_scale { jpeg_scale_denominator(&crop, view.size) } else { 1 };
    let (out_w, out_h) = if denominator > 1 {
        // jpeg-decoder picks the smallest scale whose output covers the request,
        // so asking for exactly the reduced size selects that scale.
        let (w, h) = decoder
            .scale(width.div_ceil(denominator) as u16, height.div_ceil(denominator) as u16)
            .map_err(|e| format!("invalid JPEG: {e}"))?;
        (w as usize, h as usize)
    } else {
        (width, height)
    };
    let data = decoder.decode().map_err(|e| format!("corrupt or truncated JPEG: {e}"))?;
    let rgb = to_rgb(data, info.pixel_format, out_w * out_h)?;
    let d = denominator as f64;
    let scaled = CropBox { left: crop.left / d, top: crop.top / d, width: crop.width / d, height: crop.height / d };
    crop_resize(&rgb, out_w, out_h, scaled, view.size)
}

fn to_rgb(data: Vec<u8>, format: PixelFormat, pixels: usize) -> Result<Vec<u8>, String> {
    let expected = pixels * format.pixel_bytes();
    if data.len() != expected {
        return Err(format!("JPEG decoded to {} bytes, expected {expected}", data.len()));
    }
    Ok(match format {
        PixelFormat::RGB24 => data,
        PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
        // Big-endian 16-bit samples: keep the high byte.
        PixelFormat::L16 => data.chunks_exact(2).flat_map(|l| [l[0], l[0], l[0]]).collect(),
        // jpeg-decoder returns ink amounts (0 = none); paper white times (1 - ink).
        PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|p| {
                let k = 255 - p[3] as u32;
                [0, 1, 2].map(|c| ((255 - p[c] as u32) * k / 255) as u8)
            })
            .collect(),
    })
}

fn decode_png(bytes: &[u8], view: &View) -> Result<Rgb8Image, String> {
    let image = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| format!("corrupt or truncated PNG: {e}"))?
        .into_rgb8();
    let (width, height) = (image.width() as usize, image.height() as usize);
    let crop = view.crop(width as f64, height as f64);
    crop_resize(image.as_raw(), width, height, crop, view.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(side: f64) -> CropBox {
        CropBox { left: 0.0, top: 0.0, width: side, height: side }
    }

    #[test]
    fn scale_is_the_largest_reduction_that_keeps_the_output_size() {
        assert_eq!(jpeg_scale_denominator(&square(500.0), 64), 4);
        assert_eq!(jpeg_scale_denominator(&square(512.0), 64), 8);
        assert_eq!(jpeg_scale_denominator(&square(500.0), 224), 2);
        assert_eq!(jpeg_scale_denominator(&square(447.0), 224), 1);
        assert_eq!(jpeg_scale_denominator(&CropBox { left: 0.0, top: 0.0, width: 900.0, height: 130.0 }, 64), 2);
    }

    #[test]
    fn unknown_and_empty_bytes_are_reasons_not_panics() {
        let view = View::eval(8);
        assert_eq!(decode_view(b"GIF89a....", &view).unwrap_err(), "not a JPEG or PNG image");
        assert_eq!(decode_view(b"", &view).unwrap_err(), "empty file");
        assert!(decode_view(&[0xff, 0xd8, 0xff, 0xe0, 0, 3], &view).unwrap_err().contains("JPEG"));
    }
}
