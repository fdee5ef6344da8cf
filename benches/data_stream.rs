//! Streaming WebDataset shards against indexing them, on generated shards
//! in a temp dir (warm page cache: the shards were just written).
//!
//! 1. Open cost, printed as a table before criterion runs: the time to
//!    open and the heap memory held once open (a counting allocator), for 250 to 2000 shards
//!    of 100 samples, and for 500 shards of 25 to 400 samples. The stream
//!    lists the shards and reads their `sizes.json`; the index reads every
//!    tar header. The stream's cost must grow with shards, not samples.
//! 2. The cost of the default 5000-sample shuffle buffer: the first
//!    batch's wait while it fills, and the first after a change of image
//!    size, which reads it back from its shards.
//! 3. Loader throughput on one decoding thread ("elem/s" is images per
//!    second per core) at 64 and 224 px, batches of 32 from 16 shards of
//!    384x288 photo-like JPEGs: streamed (2 readers, a shuffle buffer of
//!    256) and random access.

use criterion::{BenchmarkId, Criterion, Throughput};
use reclip::data::{BatchSpec, CaptionEncoder, Loader, LoaderConfig, ShardList, ShardStream, StreamConfig, WebDataset};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

#[path = "common/photo.rs"]
mod photo;
use photo::photo;

/// Token ids from caption bytes: the benchmark measures reading and decoding.
struct ByteEncoder;

impl CaptionEncoder for ByteEncoder {
    fn encode(&self, caption: &str, context_length: usize) -> Vec<u32> {
        let mut ids: Vec<u32> = caption.bytes().map(u32::from).take(context_length).collect();
        ids.resize(context_length, 0);
        ids
    }
}

fn jpeg(width: u32, height: u32, seed: u32, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(&photo(width, height, seed))
        .unwrap();
    bytes
}

/// Writes `shards` shards of `per_shard` samples into `dir`, each image one
/// of `images` (cycled), and open_clip's sizes.json; returns the shard list.
fn write_shards(dir: &Path, shards: usize, per_shard: usize, images: &[Vec<u8>]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let mut sizes = BTreeMap::new();
    for s in 0..shards {
        let name = format!("{s:05}.tar");
        let file = std::io::BufWriter::new(std::fs::File::create(dir.join(&name)).unwrap());
        let mut builder = tar::Builder::new(file);
        for i in 0..per_shard {
            let caption = format!("sample {i} of shard {s}").into_bytes();
            for (suffix, data) in [("jpg", &images[(s * per_shard + i) % images.len()]), ("txt", &caption)] {
                let mut header = tar::Header::new_gnu();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                builder.append_data(&mut header, format!("{s:05}{i:05}.{suffix}"), data.as_slice()).unwrap();
            }
        }
        builder.into_inner().unwrap().flush().unwrap();
        sizes.insert(name, per_shard);
    }
    std::fs::write(dir.join("sizes.json"), serde_json::to_vec(&sizes).unwrap()).unwrap();
    format!("{}/{{00000..{:05}}}.tar", dir.display(), shards - 1)
}

/// The system allocator, counting the bytes allocated and not yet freed:
/// what an opened reader holds is the count's growth while it is open.
struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Seconds to build `open()`'s value and the heap bytes it holds.
fn measure<T>(open: impl FnOnce() -> T) -> (f64, i64) {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let start = Instant::now();
    let opened = open();
    let seconds = start.elapsed().as_secs_f64();
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    drop(opened);
    (seconds, held)
}

fn open_cost(root: &Path) {
    let tiny: Vec<Vec<u8>> = (0..16).map(|i| jpeg(16, 16, i, 80)).collect();
    println!("open cost (warm page cache), {} B images", tiny[0].len());
    println!(
        "| shards | samples/shard | samples | stream open ms | stream KiB held | index open ms | index KiB held |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let kib = |b: i64| b as f64 / 1024.0;
    for (shards, per_shard) in [(250, 100), (500, 100), (1000, 100), (2000, 100), (500, 25), (500, 400)] {
        let dir = root.join(format!("open-{shards}x{per_shard}"));
        let list = write_shards(&dir, shards, per_shard, &tiny);
        let config = StreamConfig::default();
        let (stream_s, stream_b) = measure(|| ShardStream::new(ShardList::open(&list).unwrap(), config).unwrap());
        let (index_s, index_b) = measure(|| WebDataset::open(&list).unwrap());
        println!(
            "| {shards} | {per_shard} | {} | {:.1} | {:.0} | {:.1} | {:.0} |",
            shards * per_shard,
            stream_s * 1e3,
            kib(stream_b),
            index_s * 1e3,
            kib(index_b)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// What the default shuffle buffer costs when a stream starts (filled with
/// 5000 samples before its first batch) and at a change of image size (the
/// batches made ahead dropped, the buffer read back from its shards).
fn start_cost(root: &Path, photos: &[Vec<u8>]) {
    let list = write_shards(&root.join("start"), 20, 500, photos);
    let config = LoaderConfig { workers: 1, ..LoaderConfig::train(32, 0) };
    let stream = Arc::new(ShardStream::new(ShardList::open(&list).unwrap(), StreamConfig::default()).unwrap());
    let mut loader = Loader::streaming(stream, Arc::new(ByteEncoder), config).unwrap();
    let spec = |image_size| BatchSpec { image_size, context_length: 32 };
    let timed = |loader: &mut Loader, size| {
        let start = Instant::now();
        loader.next_batch(spec(size)).unwrap();
        start.elapsed().as_secs_f64() * 1e3
    };
    let first = timed(&mut loader, 64);
    let steady: f64 = (0..10).map(|_| timed(&mut loader, 64)).sum::<f64>() / 10.0;
    let switched = timed(&mut loader, 224);
    let after: f64 = (0..5).map(|_| timed(&mut loader, 224)).sum::<f64>() / 5.0;
    println!(
        "stream start, 20 x 500 samples, buffer 5000, batches of 32 on one decoding thread: first batch {first:.0} ms \
         (then {steady:.0} ms each at 64 px); first batch after a switch to 224 px {switched:.0} ms (then {after:.0} ms)"
    );
}

fn throughput(c: &mut Criterion, root: &Path, photos: &[Vec<u8>]) {
    const BATCH: usize = 32;
    let mean = photos.iter().map(Vec::len).sum::<usize>() / photos.len();
    eprintln!("throughput shards: 16 x 64 JPEGs of 384x288, {} KiB each on average", mean / 1024);
    let list = write_shards(&root.join("throughput"), 16, 64, photos);
    let config = LoaderConfig { workers: 1, ..LoaderConfig::train(BATCH, 0) };
    let streamed = StreamConfig { shuffle_buffer: 256, readers: 2, ..StreamConfig::default() };
    let mut group = c.benchmark_group("loader");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Elements(BATCH as u64));
    for size in [64, 224] {
        let spec = BatchSpec { image_size: size, context_length: 32 };
        let stream = Arc::new(ShardStream::new(ShardList::open(&list).unwrap(), streamed.clone()).unwrap());
        let mut loader = Loader::streaming(stream, Arc::new(ByteEncoder), config.clone()).unwrap();
        group.bench_function(BenchmarkId::new("stream", format!("{size}px")), |b| {
            b.iter(|| loader.next_batch(spec).unwrap())
        });
        let index = Arc::new(WebDataset::open(&list).unwrap());
        let mut loader = Loader::new(index, Arc::new(ByteEncoder), config.clone()).unwrap();
        group.bench_function(BenchmarkId::new("random", format!("{size}px")), |b| {
            b.iter(|| loader.next_batch(spec).unwrap())
        });
    }
    group.finish();
}

fn main() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Criterion::default().configure_from_args();
    // `cargo test --benches` runs benches once, quickly: skip the big open table there.
    let photos: Vec<Vec<u8>> = (0..64).map(|i| jpeg(384, 288, i, 90)).collect();
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        open_cost(root.path());
        start_cost(root.path(), &photos);
    }
    throughput(&mut c, root.path(), &photos);
    c.final_summary();
}
