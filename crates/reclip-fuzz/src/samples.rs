//! Small valid images, encoded with the `image` crate: the seeds of the
//! image target and the pictures inside the CSV and tar seeds.

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage, Rgba};
use std::io::Cursor;

/// A picture with edges and gradients, so that every DCT coefficient and PNG
/// filter type is used.
fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let checker = if (x / 4 + y / 4) % 2 == 0 { 200 } else { 40 };
        Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, checker])
    })
}

pub fn jpeg(image: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(image)
        .expect("the JPEG encoder takes 8-bit RGB and grey images");
    bytes
}

pub fn png(image: &DynamicImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png).expect("the PNG encoder takes every image type used here");
    bytes.into_inner()
}

pub fn rgb_jpeg(width: u32, height: u32, quality: u8) -> Vec<u8> {
    jpeg(&DynamicImage::ImageRgb8(picture(width, height)), quality)
}

pub fn rgb_png(width: u32, height: u32) -> Vec<u8> {
    png(&DynamicImage::ImageRgb8(picture(width, height)))
}

/// The image target's seeds: JPEG (colour and grey, sizes that do and do not
/// allow reduced-scale decoding) and PNG (RGB, RGBA, 8- and 16-bit grey), in
/// ordinary and extreme aspect ratios.
pub fn image_seeds() -> Vec<Vec<u8>> {
    let grey = DynamicImage::ImageRgb8(picture(40, 30)).into_luma8();
    let rgba = ImageBuffer::from_fn(9, 9, |x, y| Rgba([x as u8 * 28, y as u8 * 28, 128, (x * y) as u8 * 3]));
    let grey16 = ImageBuffer::from_fn(12, 8, |x, y| Luma([(x * 5000 + y * 300) as u16]));
    vec![
        rgb_jpeg(64, 48, 90),
        rgb_jpeg(7, 5, 50),
        jpeg(&DynamicImage::ImageLuma8(grey), 75),
        rgb_png(20, 12),
        // Panorama and banner shapes: the random crop falls back to a centre
        // cut of the widest allowed aspect ratio, at fractional offsets.
        rgb_png(64, 4),
        rgb_jpeg(6, 50, 70),
        png(&DynamicImage::ImageRgba8(rgba)),
        png(&DynamicImage::ImageLuma16(grey16)),
        png(&DynamicImage::ImageLuma8(ImageBuffer::from_pixel(1, 1, Luma([77])))),
    ]
}
