//! Draws a scene's crop box at any resolution. Each pixel is the average of
//! the scene over the pixel's square: in closed form where only the
//! background covers it, by an n x n grid of samples where a shape or a hard
//! background edge may cross it. The grid is finer for smaller images, so a
//! shape covers the same area at 16 px as at 224 px.

use super::scene::{Background, Pattern, Scene, ShapeFrame};
use crate::{CropBox, Rgb8Image};
use std::f32::consts::PI;

/// Samples per pixel side: enough to resolve 1/128 of the image (shapes keep
/// their area at every size), and at least 3 for smooth edges.
fn supersampling(size: usize) -> usize {
    128usize.div_ceil(size).clamp(3, 8)
}

fn lerp(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [0, 1, 2].map(|c| a[c] + (b[c] - a[c]) * t)
}

fn sinc(z: f32) -> f32 {
    if z.abs() < 1e-6 { 1.0 } else { z.sin() / z }
}

impl Background {
    fn at(&self, u: f32, v: f32) -> [f32; 3] {
        match self.pattern {
            Pattern::Plain => self.base,
            Pattern::Gradient { direction: d } => {
                lerp(self.base, self.alt, ((u - 0.5) * d[0] + (v - 0.5) * d[1] + 0.5).clamp(0.0, 1.0))
            }
            Pattern::Stripes { direction: d, period } => {
                lerp(self.base, self.alt, 0.5 + 0.5 * (2.0 * PI * (u * d[0] + v * d[1]) / period).sin())
            }
            Pattern::Split { normal: n, offset } => {
                if (u - 0.5) * n[0] + (v - 0.5) * n[1] < offset {
                    self.base
                } else {
                    self.alt
                }
            }
        }
    }

    /// The mean over the box centred at (u, v) with half-sides (hu, hv), for a
    /// box that no hard edge crosses. A gradient is linear, so its mean is its
    /// centre value; a sinusoid's mean is its centre value damped by a sinc
    /// per axis, which is what keeps fine stripes from aliasing.
    fn mean(&self, u: f32, v: f32, hu: f32, hv: f32) -> [f32; 3] {
        match self.pattern {
            Pattern::Stripes { direction: d, period } => {
                let k = 2.0 * PI / period;
                let damping = sinc(k * d[0] * hu) * sinc(k * d[1] * hv);
                let wave = (k * (u * d[0] + v * d[1])).sin() * damping;
                lerp(self.base, self.alt, 0.5 + 0.5 * wave)
            }
            _ => self.at(u, v),
        }
    }

    /// Whether the hard edge of a split background may cross the box.
    fn edge_near(&self, u: f32, v: f32, hu: f32, hv: f32) -> bool {
        match self.pattern {
            Pattern::Split { normal: n, offset } => {
                ((u - 0.5) * n[0] + (v - 0.5) * n[1] - offset).abs() <= hu * n[0].abs() + hv * n[1].abs()
            }
            _ => false,
        }
    }
}

/// The colour of the scene at a point: the first shape that covers it, or the background.
fn colour_at(scene: &Scene, frames: &[ShapeFrame], u: f32, v: f32) -> [f32; 3] {
    match scene.shapes.iter().zip(frames).find(|(_, f)| f.contains(u, v)) {
        Some((s, _)) => s.rgb,
        None => scene.background.at(u, v),
    }
}

/// `crop` is in scene units (the unit square); the output is `size` x `size`.
pub(crate) fn render(scene: &Scene, crop: CropBox, size: usize) -> Rgb8Image {
    let n = supersampling(size);
    let frames: Vec<ShapeFrame> = scene.shapes.iter().map(|s| s.frame()).collect();
    let (pu, pv) = (crop.width as f32 / size as f32, crop.height as f32 / size as f32);
    let (hu, hv) = (pu / 2.0, pv / 2.0);
    let mut pixels = Vec::with_capacity(size * size * 3);
    for py in 0..size {
        let v = crop.top as f32 + (py as f32 + 0.5) * pv;
        for px in 0..size {
            let u = crop.left as f32 + (px as f32 + 0.5) * pu;
            let shape_near = scene.shapes.iter().any(|s| {
                let e = s.bounding_radius();
                (u - s.centre[0]).abs() <= e + hu && (v - s.centre[1]).abs() <= e + hv
            });
            let rgb = if shape_near || scene.background.edge_near(u, v, hu, hv) {
                let mut sum = [0f32; 3];
                for sy in 0..n {
                    let sv = v - hv + (sy as f32 + 0.5) * pv / n as f32;
                    for sx in 0..n {
                        let c = colour_at(scene, &frames, u - hu + (sx as f32 + 0.5) * pu / n as f32, sv);
                        sum = [sum[0] + c[0], sum[1] + c[1], sum[2] + c[2]];
                    }
                }
                sum.map(|s| s / (n * n) as f32)
            } else {
                scene.background.mean(u, v, hu, hv)
            };
            pixels.extend(rgb.map(|c| (c * 255.0).round().clamp(0.0, 255.0) as u8));
        }
    }
    Rgb8Image::new(size, size, pixels)
}
