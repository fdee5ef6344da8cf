use crate::{CropBox, Rgb8Image};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use std::cell::RefCell;

thread_local! {
    // The resizer keeps scratch buffers; one per thread avoids reallocating them per image.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Cuts `crop` (source pixels, fractional allowed) out of an interleaved RGB
/// image and resizes it to `size` x `size` with a bicubic (Catmull-Rom,
/// a = -0.5, as PIL's BICUBIC) filter widened when shrinking, so downscaling
/// averages rather than aliases.
pub(crate) fn crop_resize(
    pixels: &[u8],
    width: usize,
    height: usize,
    crop: CropBox,
    size: usize,
) -> Result<Rgb8Image, String> {
    let src = ImageRef::new(width as u32, height as u32, pixels, PixelType::U8x3).map_err(|e| e.to_string())?;
    let mut dst = Image::new(size as u32, size as u32, PixelType::U8x3);
    let (w, h) = (width as f64, height as f64);
    let left = crop.left.clamp(0.0, w);
    let top = crop.top.clamp(0.0, h);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom)).crop(
        left,
        top,
        crop.width.min(w - left),
        crop.height.min(h - top),
    );
    RESIZER.with(|r| r.borrow_mut().resize(&src, &mut dst, &options)).map_err(|e| format!("resize failed: {e}"))?;
    Ok(Rgb8Image::new(size, size, dst.into_vec()))
}
