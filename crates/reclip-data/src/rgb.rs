/// CLIP's per-channel normalisation (OpenAI's statistics, used by open_clip).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (`RGBRGB…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8Image {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Rgb8Image {
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Self {
        assert_eq!(
            pixels.len(),
            width * height * 3,
            "an RGB image of {width}x{height} needs {} bytes",
            width * height * 3
        );
        Rgb8Image { width, height, pixels }
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Writes the image as CLIP-normalised planes (`[3, height, width]`) into `out`.
    pub fn normalise_into(&self, out: &mut [f32]) {
        let plane = self.width * self.height;
        assert_eq!(out.len(), 3 * plane, "output holds {} values, the image needs {}", out.len(), 3 * plane);
        let tables: [[f32; 256]; 3] =
            std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c]));
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, px) in self.pixels.chunks_exact(3).enumerate() {
            r[i] = tables[0][px[0] as usize];
            g[i] = tables[1][px[1] as usize];
            b[i] = tables[2][px[2] as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_uses_clip_statistics_per_plane() {
        let img = Rgb8Image::new(2, 1, vec![0, 128, 255, 255, 0, 0]);
        let mut out = vec![0.0; 6];
        img.normalise_into(&mut out);
        let expect = |v: u8, c: usize| (v as f32 / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
        assert_eq!(out, vec![expect(0, 0), expect(255, 0), expect(128, 1), expect(0, 1), expect(255, 2), expect(0, 2)]);
        assert!((out[1] - 1.9303).abs() < 1e-3, "white red channel {}", out[1]);
    }
}
