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
    let (crop_w, crop_h) = (crop.width.min(w - left), crop.height.min(h - top));
    let left = safe_start(width, left, crop_w, size).ok_or("resize failed: no safe horizontal crop")?;
    let top = safe_start(height, top, crop_h, size).ok_or("resize failed: no safe vertical crop")?;
    let options =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom)).crop(left, top, crop_w, crop_h);
    RESIZER.with(|r| r.borrow_mut().resize(&src, &mut dst, &options)).map_err(|e| format!("resize failed: {e}"))?;
    Ok(Rgb8Image::new(size, size, dst.into_vec()))
}

/// The crop's start along one axis, moved by a hair where fast_image_resize
/// 6.1 would corrupt memory. The resizer drops zero weights at the start of
/// each output pixel's window, so when the first pixel's centre falls where
/// the Catmull-Rom kernel is exactly zero (whole-pixel distances) while
/// upscaling (the next centre is less than a pixel on), its window starts
/// after the next pixel's — a 4x1 image's widest crop cut to 4 px does it — and the resizer's shift of the
/// windows by the first one's start underflows (a panic with overflow
/// checks, out-of-bounds reads without). A millionth of a pixel moves the
/// centres off the zeros and the output by less than a rounding step.
fn safe_start(in_size: usize, start: f64, len: f64, out_size: usize) -> Option<f64> {
    const NUDGE: f64 = 1e-6;
    let room = in_size as f64 - len;
    (0..4)
        .map(|i| start + NUDGE * i as f64)
        .map(|s| if s > room { start - (s - start) } else { s })
        .find(|&s| s >= 0.0 && first_window_starts_lowest(in_size, s, s + len, out_size))
}

/// Whether the first output pixel's window (as fast_image_resize 6.1's
/// `precompute_coefficients` bounds it, with the Catmull-Rom kernel) starts
/// at or before every other's.
fn first_window_starts_lowest(in_size: usize, in0: f64, in1: f64, out_size: usize) -> bool {
    let scale = (in1 - in0) / out_size as f64;
    if scale <= 0.0 {
        return true;
    }
    let filter_scale = scale.max(1.0);
    let radius = 2.0 * filter_scale;
    let window_start = |out_x: usize| {
        let in_center = in0 + (out_x as f64 + 0.5) * scale;
        let x_min = (in_center - radius).floor().max(0.0) as usize;
        let x_max = (in_center + radius).ceil().min(in_size as f64) as usize;
        let center = in_center - 0.5;
        (x_min..x_max).find(|&x| catmull_rom((x as f64 - center) / filter_scale) != 0.0).unwrap_or(x_min)
    };
    let first = window_start(0);
    (1..out_size).all(|x| window_start(x) >= first)
}

/// The resizer's Catmull-Rom kernel (a = -0.5), for its zeros.
fn catmull_rom(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Crops on which fast_image_resize 6.1 underflows, found by reclip-fuzz:
    /// each starts on a kernel zero along one axis.
    #[test]
    fn crops_that_start_on_a_kernel_zero_resize_without_corrupting_memory() {
        let cases = [
            (4, 1, CropBox { left: 4.0 / 3.0, top: 0.0, width: 4.0 / 3.0, height: 1.0 }, 4),
            (1, 4, CropBox { left: 0.0, top: 4.0 / 3.0, width: 1.0, height: 4.0 / 3.0 }, 4),
            (
                8,
                4,
                crate::View { size: 16, augment: crate::Augment::RandomResizedCrop, seed: 0, reduced_jpeg_scale: true }
                    .crop(8.0, 4.0),
                16,
            ),
        ];
        for (w, h, crop, size) in cases {
            let horizontal = first_window_starts_lowest(w, crop.left, crop.left + crop.width, size);
            let vertical = first_window_starts_lowest(h, crop.top, crop.top + crop.height, size);
            assert!(!(horizontal && vertical), "{w}x{h}: the case does not reach the resizer's bug");
            let out = crop_resize(&vec![128u8; w * h * 3], w, h, crop, size).unwrap();
            let flat = (0..size).all(|y| (0..size).all(|x| out.pixel(x, y) == [128; 3]));
            assert!(flat, "{w}x{h}: a flat image must stay flat");
        }
    }
}
