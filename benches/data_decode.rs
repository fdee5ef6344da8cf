//! Data pipeline throughput: images/s decoded from a WebDataset shard of
//! ~500 px photo-like JPEGs to 64 px and 224 px (centre crop, bicubic), with
//! and without reduced-scale JPEG decoding, on one thread. criterion's
//! "elem/s" is images per second. The shard is generated in a temp dir.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reclip::data::{Dataset, View, WebDataset};
use std::hint::black_box;
use std::time::Duration;

#[path = "common/photo.rs"]
mod photo;
use photo::photo;

const IMAGES: u32 = 32;

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
