//! Where an image is cut from its source. Both transforms are expressed as a
//! crop box in source pixels that is then resized to the output square, so
//! decoders can pick a reduced scale from the box and the synthetic renderer
//! can draw the box directly.

use rand::Rng;

/// How a sample's image is brought to the requested size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Augment {
    /// open_clip's eval transform: resize the shortest side to the size
    /// (bicubic), then cut the centre square. That is the centre square of
    /// side `min(width, height)` resized to the output.
    CentreCrop,
    /// open_clip's train transform: torchvision's RandomResizedCrop with scale
    /// 0.9–1.0 and aspect ratio 3/4–4/3, computed in continuous coordinates
    /// (no rounding to whole pixels), bicubic.
    RandomResizedCrop,
}

pub const CROP_SCALE: (f64, f64) = (0.9, 1.0);
pub const CROP_RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);
const CROP_ATTEMPTS: usize = 10;

/// A region of the source image, in source pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropBox {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// What one sample's image should look like: the output square's side, the
/// transform, the seed of its random crop, and whether a JPEG may be decoded
/// at a reduced DCT scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    pub size: usize,
    pub augment: Augment,
    pub seed: u64,
    pub reduced_jpeg_scale: bool,
}

impl View {
    /// A centre-crop view of the given size (evaluation), with reduced-scale JPEG decoding.
    pub fn eval(size: usize) -> Self {
        View { size, augment: Augment::CentreCrop, seed: 0, reduced_jpeg_scale: true }
    }

    /// The crop box for a source of `width` x `height` pixels; the same view
    /// always gives the same box.
    pub fn crop(&self, width: f64, height: f64) -> CropBox {
        match self.augment {
            Augment::CentreCrop => centre_square(width, height),
            Augment::RandomResizedCrop => random_resized_crop(width, height, self.seed),
        }
    }
}

fn centre_square(width: f64, height: f64) -> CropBox {
    let side = width.min(height);
    CropBox { left: (width - side) / 2.0, top: (height - side) / 2.0, width: side, height: side }
}

fn random_resized_crop(width: f64, height: f64, seed: u64) -> CropBox {
    let mut rng = reclip_core::rng(seed);
    let area = width * height;
    let (log_lo, log_hi) = (CROP_RATIO.0.ln(), CROP_RATIO.1.ln());
    for _ in 0..CROP_ATTEMPTS {
        let target = area * rng.random_range(CROP_SCALE.0..=CROP_SCALE.1);
        let aspect = rng.random_range(log_lo..=log_hi).exp();
        let w = (target * aspect).sqrt();
        let h = (target / aspect).sqrt();
        if w <= width && h <= height {
            let left = rng.random_range(0.0..=width - w);
            let top = rng.random_range(0.0..=height - h);
            return CropBox { left, top, width: w, height: h };
        }
    }
    // As torchvision: the whole image, cut to the nearest allowed aspect ratio.
    let ratio = width / height;
    let (w, h) = if ratio < CROP_RATIO.0 {
        (width, width / CROP_RATIO.0)
    } else if ratio > CROP_RATIO.1 {
        (height * CROP_RATIO.1, height)
    } else {
        (width, height)
    };
    CropBox { left: (width - w) / 2.0, top: (height - h) / 2.0, width: w, height: h }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(seed: u64) -> View {
        View { size: 64, augment: Augment::RandomResizedCrop, seed, reduced_jpeg_scale: true }
    }

    #[test]
    fn centre_crop_is_the_centre_square() {
        let b = View::eval(64).crop(500.0, 300.0);
        assert_eq!(b, CropBox { left: 100.0, top: 0.0, width: 300.0, height: 300.0 });
    }

    #[test]
    fn random_crops_stay_inside_with_area_and_ratio_in_range() {
        let (w, h) = (400.0, 300.0);
        let mut moved = 0;
        for seed in 0..300 {
            let b = train(seed).crop(w, h);
            assert!(b.left >= 0.0 && b.top >= 0.0 && b.left + b.width <= w + 1e-9 && b.top + b.height <= h + 1e-9);
            let scale = b.width * b.height / (w * h);
            let ratio = b.width / b.height;
            assert!((CROP_SCALE.0 - 1e-9..=CROP_SCALE.1 + 1e-9).contains(&scale), "scale {scale}");
            assert!((CROP_RATIO.0 - 1e-9..=CROP_RATIO.1 + 1e-9).contains(&ratio), "ratio {ratio}");
            if b.left > 1.0 || b.top > 1.0 {
                moved += 1;
            }
        }
        // With a 0.9 minimum scale most attempts do not fit a 4:3 image and
        // fall back to the whole image, as in torchvision; some must not.
        assert!(moved > 30, "only {moved} of 300 crops were off-centre");
    }

    #[test]
    fn random_crops_depend_only_on_the_seed() {
        assert_eq!(train(3).crop(640.0, 480.0), train(3).crop(640.0, 480.0));
        assert_ne!(train(3).crop(640.0, 480.0), train(4).crop(640.0, 480.0));
    }

    #[test]
    fn a_too_wide_image_falls_back_to_the_widest_allowed_centre_crop() {
        let b = random_resized_crop(1000.0, 100.0, 1);
        assert!((b.width - 100.0 * CROP_RATIO.1).abs() < 1e-9 && b.height == 100.0);
        assert!((b.left - (1000.0 - b.width) / 2.0).abs() < 1e-9);
    }
}
