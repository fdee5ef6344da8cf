//! Image decoding for one view. A JPEG whose crop is at least twice the output
//! size on both sides is decoded at 1/2, 1/4 or 1/8 scale by jpeg-decoder's
//! reduced inverse DCTs (the largest reduction that still leaves at least
//! `size` pixels across the crop), so far fewer pixels are produced and then
//! resized. PNGs are decoded in full by the `image` crate. Grayscale, 16-bit
//! and CMYK become 8-bit RGB; alpha is dropped as PIL's `convert("RGB")` does.
//!
//! Both formats are refused from their headers, before any pixel buffer is
//! allocated, when they declare more than [`MAX_IMAGE_PIXELS`] pixels.

use crate::limits::MAX_IMAGE_PIXELS;
use crate::resize::crop_resize;
use crate::{CropBox, Rgb8Image, View};
use image::codecs::png::PngDecoder;
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
    check_pixels(info.width.into(), info.height.into())?;
    // A second guard on the output buffer (CMYK is the widest format, 4 bytes a pixel).
    decoder.set_max_decoding_buffer_size(MAX_IMAGE_PIXELS as usize * 4);
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

/// Refuses an image that declares more than [`MAX_IMAGE_PIXELS`] pixels.
fn check_pixels(width: u64, height: u64) -> Result<(), String> {
    if width * height > MAX_IMAGE_PIXELS {
        return Err(format!(
            "declares {width}×{height} pixels, more than the MAX_IMAGE_PIXELS ceiling ({MAX_IMAGE_PIXELS})"
        ));
    }
    Ok(())
}

/// The width and height in a PNG's IHDR chunk, which must come first.
fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(PNG_MAGIC.len()..PNG_MAGIC.len() + 16)?;
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (&ihdr[4..8] == b"IHDR").then(|| (be(&ihdr[8..12]), be(&ihdr[12..16])))
}

fn decode_png(bytes: &[u8], view: &View) -> Result<Rgb8Image, String> {
    // Checked from the header bytes, before the decoder sets up its row buffers.
    if let Some((width, height)) = png_dimensions(bytes) {
        check_pixels(width.into(), height.into())?;
    }
    let mut limits = image::Limits::default();
    // Room for any image under the pixel ceiling (RGBA16 is the widest, 8 bytes a pixel).
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8);
    let decoder = PngDecoder::with_limits(std::io::Cursor::new(bytes), limits).map_err(png_error)?;
    let image = image::DynamicImage::from_decoder(decoder).map_err(png_error)?.into_rgb8();
    let (width, height) = (image.width() as usize, image.height() as usize);
    let crop = view.crop(width as f64, height as f64);
    crop_resize(image.as_raw(), width, height, crop, view.size)
}

/// A PNG decoding error on one line, without the Rust `Debug` text the png
/// crate puts in some messages (`ChunkType { type: IDAT, critical: true, .. }`
/// becomes `IDAT`).
fn png_error(e: image::ImageError) -> String {
    let reason = match &e {
        image::ImageError::Limits(_) => format!("needs more memory than allowed to decode: {e}"),
        _ => format!("corrupt or truncated PNG: {e}"),
    };
    plain_chunk_names(&reason)
}

fn plain_chunk_names(text: &str) -> String {
    const START: &str = "ChunkType { type: ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(START) {
        out.push_str(&rest[..at]);
        let after = &rest[at + START.len()..];
        match (after.find(','), after.find(" }")) {
            (Some(comma), Some(end)) if comma < end => {
                out.push_str(&after[..comma]);
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str(START);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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

    /// A tiny real image whose header then declares another size.
    fn with_declared_size(
        mut bytes: Vec<u8>,
        marker: &[u8],
        skip: usize,
        width: u32,
        height: u32,
        be16: bool,
    ) -> Vec<u8> {
        let at = bytes.windows(marker.len()).position(|w| w == marker).unwrap() + skip;
        if be16 {
            bytes[at..at + 2].copy_from_slice(&(height as u16).to_be_bytes());
            bytes[at + 2..at + 4].copy_from_slice(&(width as u16).to_be_bytes());
        } else {
            bytes[at..at + 4].copy_from_slice(&width.to_be_bytes());
            bytes[at + 4..at + 8].copy_from_slice(&height.to_be_bytes());
        }
        bytes
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let img = image::RgbImage::from_pixel(width, height, image::Rgb([90, 120, 150]));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80).encode_image(&img).unwrap();
        bytes
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        let img = image::RgbImage::from_pixel(width, height, image::Rgb([90, 120, 150]));
        img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header_at_once() {
        // SOF0: marker, 2 length bytes, precision, then height and width.
        let bomb = with_declared_size(jpeg(8, 8), &[0xff, 0xc0], 5, 65500, 65500, true);
        assert!(bomb.len() < 1000, "{} bytes", bomb.len());
        let start = std::time::Instant::now();
        let err = decode_view(&bomb, &View::eval(8)).unwrap_err();
        assert!(start.elapsed().as_millis() < 1000, "took {:?}", start.elapsed());
        assert_eq!(err, "declares 65500×65500 pixels, more than the MAX_IMAGE_PIXELS ceiling (89478485)");

        let bomb = with_declared_size(png(1, 1), b"IHDR", 4, 100_000, 1_000_000, false);
        let start = std::time::Instant::now();
        let err = decode_view(&bomb, &View::eval(8)).unwrap_err();
        assert!(start.elapsed().as_millis() < 1000, "took {:?}", start.elapsed());
        assert_eq!(err, "declares 100000×1000000 pixels, more than the MAX_IMAGE_PIXELS ceiling (89478485)");
    }

    #[test]
    fn the_pixel_ceiling_is_inclusive() {
        assert!(check_pixels(MAX_IMAGE_PIXELS, 1).is_ok());
        assert!(check_pixels(9459, 9459).is_ok());
        assert!(check_pixels(MAX_IMAGE_PIXELS + 1, 1).is_err());
        assert!(check_pixels(u32::MAX.into(), u32::MAX.into()).unwrap_err().contains("4294967295×4294967295"));
    }

    #[test]
    fn png_errors_name_chunks_in_plain_words() {
        // A width changed after the IHDR checksum was computed.
        let bytes = with_declared_size(png(4, 4), b"IHDR", 4, 5, 4, false);
        let err = decode_view(&bytes, &View::eval(4)).unwrap_err();
        assert!(err.starts_with("corrupt or truncated PNG") && err.contains("IHDR"), "{err}");
        assert!(!err.contains("ChunkType") && !err.contains('{') && !err.contains('\n'), "{err}");
        assert_eq!(
            plain_chunk_names("bad ChunkType { type: IDAT, critical: true, private: false } chunk"),
            "bad IDAT chunk"
        );
        assert_eq!(plain_chunk_names("ChunkType { type: x"), "ChunkType { type: x");
    }
}
