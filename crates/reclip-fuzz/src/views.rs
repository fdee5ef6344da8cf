//! The views an input is decoded for, drawn from the input's own bytes so
//! that replaying a saved input repeats exactly what the campaign ran.

use reclip_data::{Augment, Rgb8Image, View};

/// Output sides the image targets ask for: 1 px up to past the reduced JPEG
/// scales' thresholds for the seed images.
pub const MAX_VIEW_SIZE: usize = 96;

/// FNV-1a, then mixed by SplitMix64's finaliser: a hash with a fixed
/// definition (std's may change between Rust releases).
pub fn fingerprint(bytes: &[u8], salt: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ salt;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The `k`-th view for `input`: any size in 1..=[`MAX_VIEW_SIZE`], either
/// transform, with or without reduced-scale JPEG decoding.
pub fn view_for(input: &[u8], k: u64) -> View {
    let h = fingerprint(input, k);
    View {
        size: 1 + (h % MAX_VIEW_SIZE as u64) as usize,
        augment: if h >> 32 & 1 == 0 { Augment::CentreCrop } else { Augment::RandomResizedCrop },
        seed: h >> 40,
        reduced_jpeg_scale: h >> 33 & 1 == 0,
    }
}

/// A decoded image must be the view's square, three bytes a pixel.
pub fn check_image(image: &Rgb8Image, view: &View) -> Result<(), String> {
    let want = view.size * view.size * 3;
    if image.width != view.size || image.height != view.size || image.pixels.len() != want {
        return Err(format!(
            "decoded to {}x{} with {} bytes for a {}-pixel view ({want} bytes expected)",
            image.width,
            image.height,
            image.pixels.len(),
            view.size
        ));
    }
    Ok(())
}
