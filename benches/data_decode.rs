//! Data pipeline throughput: images/s decoded from a WebDataset shard of
//! ~500 px photo-like JPEGs to 64 px and 224 px (centre crop, bicubic), with
//! and without reduced-scale JPEG decoding, on one thread. criterion's
//! "elem/s" is images per second. The shard is generated in a temp dir.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reclip::data::{Dataset, View, WebDataset};
use std::hint::black_box;
use std::time::Duration;

const IMAGES: u32 = 32;

/// Multi-octave value noise with a few hard-edged discs: smooth regions,
/// texture and edges, so it compresses and decodes like a photograph.
fn photo(width: u32, height: u32, seed: u32) -> image::RgbImage {
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

fn build_shard(dir: &std::path::Path) -> (String, usize) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut jpeg_bytes = 0;
    for i in 0..IMAGES {
        let (w, h) = if i % 2 == 0 { (500, 375) } else { (375, 500) };
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&photo(w, h, i)).unwrap();
        jpeg_bytes += jpeg.len();
        for (suffix, data) in [("jpg", jpeg), ("txt", format!("photo {i}").into_bytes())] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, format!("{i:06}.{suffix}"), data.as_slice()).unwrap();
        }
    }
    let path = dir.join("photos.tar");
    std::fs::write(&path, builder.into_inner().unwrap()).unwrap();
    (path.to_str().unwrap().to_string(), jpeg_bytes / IMAGES as usize)
}

fn decode_shard(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (shard, mean_bytes) = build_shard(dir.path());
    let dataset = WebDataset::open(&shard).unwrap();
    eprintln!("shard: {IMAGES} JPEGs of 500x375 / 375x500, {} KiB each on average", mean_bytes / 1024);
    let mut group = c.benchmark_group("decode_shard");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Elements(IMAGES as u64));
    for size in [64, 224] {
        for (label, reduced) in [("reduced_scale", true), ("full_decode", false)] {
            let view = View { reduced_jpeg_scale: reduced, ..View::eval(size) };
            group.bench_function(BenchmarkId::new(label, format!("{size}px")), |b| {
                b.iter(|| {
                    for i in 0..dataset.len() {
                        black_box(dataset.load(i, &view).unwrap());
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decode_shard);
criterion_main!(benches);
