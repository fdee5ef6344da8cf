//! WebDataset shards read as streams, for datasets too large to index: tens
//! of thousands of shards on network or object storage, as LAION and
//! DataComp are.
//!
//! Opening lists the shards and checks each is a regular file — O(shards),
//! no tar header read — and takes each shard's sample count from open_clip's
//! `sizes.json` beside it (`reclip index-shards` writes one), or the epoch's
//! length from `samples_per_epoch`.
//!
//! Order, for rank `r` of `k` with `W` readers and a shuffle buffer of `S`:
//! - epoch `e` permutes the shards from `(seed, e)`; rank `r` takes every
//!   `k`-th shard of the permutation from the `r`-th, and its reader `w`
//!   every `W`-th of those from the `w`-th (open_clip's split by node, then
//!   by worker), so ranks read disjoint shards. Resampled, each reader
//!   instead draws shard after shard with replacement from
//!   `(seed, e, r, w, draw)`.
//! - each reader reads its shards sequentially on a thread of its own, up
//!   to 256 samples and 64 MiB ahead; the rank takes one sample from each
//!   reader in turn.
//! - the samples pass through a shuffle buffer, topped up to `S` samples
//!   (and at most 2 GiB) before each sample is handed out: the one at a
//!   place drawn from `(seed, e, r, handed out so far)`. When the readers
//!   are done the buffer drains.
//! - an epoch is `samples_per_epoch / B` batches (the sum of `sizes.json`'s
//!   counts by default) of `B/k` samples per rank. Ranks hold unequal
//!   numbers of samples (shards differ in size and count, samples are bad),
//!   so a rank whose readers end before its share of the epoch reads its
//!   shards again, in a new order (a second pass, counted in the report),
//!   and a rank with samples to spare leaves them unread: every rank makes
//!   exactly as many batches as the others, and none runs dry in a step.
//!
//! A batch is a deterministic function of the seed, the data and the layout
//! (`k`, `W`, `S`), not of threads or timing. Its state after each batch —
//! the epoch, each reader's shard and byte offset, the buffer's contents as
//! shard locations, and how many samples it handed out — is a
//! [`StreamState`], from which a run resumes with the same samples in the
//! same order. What resuming gives up: the layout must stay the same, since
//! with another number of ranks or readers each would have read other shards.

mod cursor;
mod order;
mod reader;
mod state;

pub(crate) use cursor::Cursor;
pub(crate) use reader::RawSample;
pub(crate) use state::Layout;
pub use state::StreamState;

use crate::files::open_regular;
use crate::shards::expand_shard_list;
use crate::sizes::read_sample_counts;
use crate::{DataReport, Error, Result};
use std::path::PathBuf;

/// open_clip's shuffle buffer size (`_SAMPLE_SHUFFLE_SIZE`).
pub const DEFAULT_SHUFFLE_BUFFER: usize = 5000;
/// Readers per rank: enough sequential streams to keep a few disks or
/// network connections busy; each holds its read-ahead.
pub const DEFAULT_READERS: usize = 4;
/// The largest shuffle buffer: at LAION's ~30 KB a sample, 3 GB per rank.
pub const MAX_SHUFFLE_BUFFER: usize = 100_000;
/// The most readers per rank.
pub const MAX_READERS: usize = 64;

/// How shards are streamed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Samples the shuffle buffer holds (1: no shuffling beyond the shard order).
    pub shuffle_buffer: usize,
    /// Sequential readers per rank, each on its own shards.
    pub readers: usize,
    /// Draw shards with replacement, as open_clip's `--dataset-resampled`.
    pub resampled: bool,
    /// An epoch's length in samples, as open_clip's `--train-num-samples`
    /// (default: the sum of the shards' counts in `sizes.json`).
    pub samples_per_epoch: Option<u64>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            shuffle_buffer: DEFAULT_SHUFFLE_BUFFER,
            readers: DEFAULT_READERS,
            resampled: false,
            samples_per_epoch: None,
        }
    }
}

/// The shards a list names that are regular files, with their sizes: what
/// opening a stream costs, and what tells a small dataset from a large one.
pub struct ShardList {
    pub source: String,
    pub paths: Vec<PathBuf>,
    pub bytes: Vec<u64>,
    /// Shards left out: missing, or not regular files.
    pub report: DataReport,
}

impl ShardList {
    /// Expands `list` (see [`expand_shard_list`]) and checks each shard, reading none.
    pub fn open(list: &str) -> Result<Self> {
        let mut report = DataReport::new(list);
        let (mut paths, mut bytes) = (Vec::new(), Vec::new());
        for path in expand_shard_list(list)?.into_iter().map(PathBuf::from) {
            match open_regular(&path).and_then(|f| Ok(f.metadata()?.len())) {
                Ok(len) => {
                    paths.push(path);
                    bytes.push(len);
                }
                Err(e) => report.record(e.into_problem(path.display().to_string())),
            }
        }
        if paths.is_empty() {
            return Err(Error::no_usable_sample(list, "it names no readable shard", report));
        }
        Ok(ShardList { source: list.to_string(), paths, bytes, report })
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

/// Shards to stream, checked and counted: shared by the ranks' and
/// readers' cursors.
pub struct ShardStream {
    list: ShardList,
    config: StreamConfig,
    samples_per_epoch: u64,
}

impl ShardStream {
    /// The stream over `list`'s shards. Without `samples_per_epoch`, every
    /// shard's count must be in a `sizes.json`.
    pub fn new(list: ShardList, config: StreamConfig) -> Result<Self> {
        if config.shuffle_buffer == 0 || config.shuffle_buffer > MAX_SHUFFLE_BUFFER {
            return Err(Error::option(
                "shuffle buffer",
                format!("{} is not between 1 and {MAX_SHUFFLE_BUFFER} samples", config.shuffle_buffer),
            ));
        }
        if config.readers == 0 || config.readers > MAX_READERS {
            return Err(Error::option("readers", format!("{} is not between 1 and {MAX_READERS}", config.readers)));
        }
        let samples_per_epoch = match config.samples_per_epoch {
            Some(0) => return Err(Error::option("samples per epoch", "must be at least 1")),
            Some(n) => n,
            None => match read_sample_counts(&list.paths)? {
                Some(counts) => counts.iter().sum(),
                None => {
                    return Err(Error::option(
                        "samples per epoch",
                        format!(
                            "streaming {} needs an epoch's length: no {} beside its shards (write one with \
                             `reclip index-shards`), or pass --samples-per-epoch",
                            list.source,
                            crate::SIZES_FILE
                        ),
                    ));
                }
            },
        };
        Ok(ShardStream { list, config, samples_per_epoch })
    }

    pub fn source(&self) -> &str {
        &self.list.source
    }

    pub fn shards(&self) -> usize {
        self.list.paths.len()
    }

    pub fn total_bytes(&self) -> u64 {
        self.list.total_bytes()
    }

    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    pub fn samples_per_epoch(&self) -> u64 {
        self.samples_per_epoch
    }

    /// The shards left out when the stream was opened.
    pub fn open_report(&self) -> &DataReport {
        &self.list.report
    }

    pub(crate) fn path(&self, shard: u32) -> &std::path::Path {
        &self.list.paths[shard as usize]
    }

    /// Why `ranks` ranks cannot share these shards, if they cannot: without
    /// resampling each rank needs a shard of its own.
    pub(crate) fn check_ranks(&self, ranks: usize) -> Result<()> {
        if !self.config.resampled && self.shards() < ranks {
            return Err(Error::option(
                "rank slice",
                format!(
                    "{} has {} shard(s), fewer than the {ranks} ranks that each read their own \
                     (resample them, or use fewer ranks)",
                    self.source(),
                    self.shards()
                ),
            ));
        }
        Ok(())
    }
}
