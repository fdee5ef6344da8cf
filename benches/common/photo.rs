//! Photo-like test images for the data benchmarks.

/// Multi-octave value noise with a few hard-edged discs: smooth regions,
/// texture and edges, so it compresses and decodes like a photograph.
pub fn photo(width: u32, height: u32, seed: u32) -> image::RgbImage {
    let hash = |x: i32, y: i32, octave: u32| -> f32 {
        let mut v = (x as u32).wrapping_mul(374_761_393)
            ^ (y as u32).wrapping_mul(668_265_263)
            ^ seed.wrapping_mul(2_246_822_519)
            ^ octave.wrapping_mul(3_266_489_917);
        v = (v ^ (v >> 13)).wrapping_mul(1_274_126_177);
        ((v ^ (v >> 16)) & 0xffff) as f32 / 65535.0
    };
    let discs: Vec<(f32, f32, f32, [f32; 3])> = (0..6)
        .map(|i| {
            let h = |k: u32| hash(i, k as i32, 99);
            (h(0) * width as f32, h(1) * height as f32, 20.0 + h(2) * 80.0, [h(3), h(4), h(5)])
        })
        .collect();
    image::RgbImage::from_fn(width, height, |x, y| {
        let rgb = [0u32, 1, 2].map(|channel| {
            let (mut value, mut amplitude, mut frequency) = (0.0, 0.5, 1.0 / 96.0);
            for octave in 0..7 {
                let (fx, fy) = (x as f32 * frequency, y as f32 * frequency);
                let (ix, iy) = (fx.floor() as i32, fy.floor() as i32);
                let (tx, ty) = (fx - ix as f32, fy - iy as f32);
                let o = octave * 3 + channel;
                let top = hash(ix, iy, o) * (1.0 - tx) + hash(ix + 1, iy, o) * tx;
                let bottom = hash(ix, iy + 1, o) * (1.0 - tx) + hash(ix + 1, iy + 1, o) * tx;
                value += amplitude * (top * (1.0 - ty) + bottom * ty);
                amplitude *= 0.6;
                frequency *= 2.0;
            }
            for &(cx, cy, r, colour) in &discs {
                if (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r {
                    value = 0.5 * value + 0.5 * colour[channel as usize];
                }
            }
            (value * 255.0).clamp(0.0, 255.0) as u8
        });
        image::Rgb(rgb)
    })
}
