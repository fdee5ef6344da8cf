//! reclip's data: where image–caption pairs come from and how they become
//! batches.
//!
//! Sources implement [`Dataset`] (random access by index): the built-in
//! [`Synthetic`] shapes, [`CsvDataset`] lists, [`WebDataset`] tar shards and
//! [`ImageFolder`] classification sets. A sample is loaded for a [`View`] — the
//! output size, the transform and its seed — and decoded straight to that
//! size ([`decode_view`]). The [`Loader`] turns a dataset into batches of
//! CLIP-normalised image tensors and token ids, in an order fixed by the
//! seed, with bad samples skipped and counted in a [`DataReport`].
//!
//! Data may be hostile or broken, so every input is bounded by a ceiling in
//! [`limits`], checked before the work it bounds: only regular files are
//! opened (a FIFO or `/dev/zero` is a reported problem, never a hang), no
//! file is read past its size ceiling, images are refused from their headers
//! when they declare more than [`MAX_IMAGE_PIXELS`], shard patterns are
//! counted before they are expanded, ImageFolder walks at most
//! [`MAX_FOLDER_DEPTH`] levels and stops at symbolic link loops, and a CSV
//! row that a stray quote ran over several lines is reported, not merged.

mod csv_list;
mod dataset;
mod decode;
mod encoder;
mod error;
mod files;
mod image_folder;
pub mod limits;
mod line_count;
mod loader;
mod report;
mod resize;
mod rgb;
mod seed;
mod shards;
mod sizes;
mod stream;
pub mod synthetic;
mod tar_walk;
mod templates;
mod view;
mod webdataset;

pub use csv_list::{CsvDataset, CsvOptions, parse_separator};
pub use dataset::{Dataset, Sample, ZeroShotSet};
pub use decode::{decode_view, jpeg_scale_denominator};
pub use encoder::CaptionEncoder;
pub use error::{Error, Result};
pub use files::{read_image_file, read_text_file};
pub use image_folder::ImageFolder;
pub use limits::{
    MAX_CAPTION_BYTES, MAX_FOLDER_DEPTH, MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, MAX_LIST_BYTES, MAX_SHARDS,
    MAX_TEXT_FILE_BYTES,
};
pub use loader::{Batch, BatchSpec, Loader, LoaderConfig, MAX_SUBSTITUTES, Position, Slice};
pub use report::{DataReport, EXAMPLES_PER_KIND, Problem, ProblemKind};
pub use rgb::{CLIP_MEAN, CLIP_STD, Rgb8Image};
pub use shards::expand_shard_list;
pub use sizes::{SIZES_FILE, read_sample_counts};
pub use stream::{
    DEFAULT_READERS, DEFAULT_SHUFFLE_BUFFER, MAX_READERS, MAX_SHUFFLE_BUFFER, ShardList, ShardStream, StreamConfig,
    StreamState,
};
pub use synthetic::{Synthetic, SyntheticConfig};
pub use templates::{DEFAULT_TEMPLATES, fill_template, read_templates};
pub use view::{Augment, CROP_RATIO, CROP_SCALE, CropBox, View};
pub use webdataset::{WebDataset, count_shard_samples};
