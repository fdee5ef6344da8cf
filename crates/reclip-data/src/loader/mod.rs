//! Batches from a dataset.
//!
//! Order: epoch `e` visits the dataset in a permutation drawn from
//! `(seed, e)` (or in index order without shuffling); batch `k` takes places
//! `k*B .. (k+1)*B` of it. Each place's crop is seeded by `(seed, e, k, place)`,
//! so a batch's content depends only on `(seed, e, k)` and the data — never on
//! the number of workers or their timing — and a run resumed at a
//! [`Position`] sees exactly the batches it would have seen.
//!
//! Training drops the last partial batch of an epoch (`drop_last`, so every
//! batch has `B` samples); evaluation keeps it.
//!
//! Bad samples: a sample that fails to load is reported once and remembered.
//! In training (`replace_bad`) its place is filled by a substitute drawn from
//! `(seed, e, k, place)` — up to [`MAX_SUBSTITUTES`] tries — so batches keep
//! their size; in evaluation it is left out, so no sample is counted twice
//! and a batch may be smaller than `B`, even empty. A training batch with no
//! sample, or any batch once every sample has failed, is an error naming the
//! dataset.
//!
//! Ranks: with data-parallel training, `k` processes share each batch. The
//! batch size stays the global one, and rank `r`'s loader ([`Slice`]) makes
//! only places `r*B/k .. (r+1)*B/k` of each batch — the same indices, crops
//! and substitutes, in the same order, as those rows of the batch a single
//! process makes, since every seed above names the global place. So the
//! rows the `k` ranks train on together do not depend on `k`. Positions,
//! batches per epoch, seeking and resuming are those of the global stream.
//! `B` must be divisible by `k`. Only training is split: the last partial
//! batch of an evaluation epoch could not be shared evenly, so evaluation
//! is left to one process. Each rank reports the bad samples it met, and a
//! rank whose places all failed errs even where the others' did not.
//!
//! Size: each request names the image size and context length. Batches made
//! ahead at another size are discarded and made again, so the trainer can
//! switch from 64 px to 224 px between two steps.
//!
//! Streams: [`Loader::streaming`] makes batches from a shard stream (see
//! [`crate::ShardStream`]) instead of a dataset read by index. Positions
//! count batches as above, but the samples come from the rank's stream in
//! its order, a bad one replaced by the stream's next; the stream's state
//! after each batch rides with it, so that discarded batches are made again
//! from the batch handed out next (`seek` resumes from a saved state).

mod assemble;
mod prefetch;
mod streamed;

pub use assemble::MAX_SUBSTITUTES;

use crate::stream::{ShardStream, StreamState};
use crate::{Augment, CaptionEncoder, DataReport, Dataset, Error, Result};
use assemble::Maker;
use prefetch::Prefetcher;
use reclip_core::Tensor;
use std::ops::Range;
use std::sync::Arc;
use streamed::StreamMaker;

/// The share of each batch one of several data-parallel processes makes:
/// rank `rank` of `ranks` holds places `rank*B/ranks .. (rank+1)*B/ranks`
/// of every global batch of `B` places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// This process's rank, `0 .. ranks`.
    pub rank: usize,
    /// How many processes share each batch.
    pub ranks: usize,
}

impl Slice {
    /// The whole batch: a single process.
    pub const WHOLE: Slice = Slice { rank: 0, ranks: 1 };

    /// The places of a global batch of `batch_size` places that this slice holds.
    ///
    /// # Panics
    /// If `ranks` is 0 ([`Loader::new`] refuses such a slice).
    pub fn places(self, batch_size: usize) -> Range<usize> {
        self.rank * batch_size / self.ranks..(self.rank + 1) * batch_size / self.ranks
    }

    /// Why this slice cannot be used with `config`, if it cannot.
    fn check(self, config: &LoaderConfig) -> Result<()> {
        let Slice { rank, ranks } = self;
        if ranks == 0 {
            return Err(Error::option("rank slice", "there must be at least 1 rank"));
        }
        if rank >= ranks {
            return Err(Error::option(
                "rank slice",
                format!("rank {rank} of {ranks} ranks (ranks are 0 to {})", ranks - 1),
            ));
        }
        if !config.batch_size.is_multiple_of(ranks) {
            return Err(Error::option(
                "batch size",
                format!("{} is not divisible by the {ranks} ranks", config.batch_size),
            ));
        }
        if ranks > 1 && !config.drop_last {
            return Err(Error::option(
                "rank slice",
                format!(
                    "an epoch's last partial batch (kept without drop_last) cannot be split evenly among {ranks} ranks"
                ),
            ));
        }
        Ok(())
    }
}

/// How a [`Loader`] draws, makes and shares its batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    /// The global batch size: places per batch, summed over all ranks.
    pub batch_size: usize,
    pub seed: u64,
    /// A new permutation each epoch; without it, index order (evaluation).
    pub shuffle: bool,
    /// Leave out the last batch of an epoch when it would be smaller than `batch_size`.
    pub drop_last: bool,
    pub augment: Augment,
    /// Fill a bad sample's place with a substitute rather than leave it out.
    pub replace_bad: bool,
    /// Decode JPEGs at 1/2, 1/4 or 1/8 scale when the output is that much smaller.
    pub reduced_jpeg_scale: bool,
    /// Decoding threads. With 0, batches are made on the caller's thread when asked for.
    pub workers: usize,
    /// Batches kept ready ahead of the trainer (with workers only).
    pub prefetch: usize,
    /// The share of each batch this process makes.
    pub slice: Slice,
}

impl LoaderConfig {
    /// Why a loader cannot work this way, whatever its source, if it cannot.
    fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::option("batch size", "must be at least 1"));
        }
        self.slice.check(self)?;
        if self.workers > 0 && self.prefetch == 0 {
            return Err(Error::option("prefetch", "must be at least 1 when there are workers"));
        }
        Ok(())
    }

    /// Shuffled, last partial batch dropped, random resized crops, bad samples
    /// replaced, a worker per core, the whole batch.
    pub fn train(batch_size: usize, seed: u64) -> Self {
        LoaderConfig {
            batch_size,
            seed,
            shuffle: true,
            drop_last: true,
            augment: Augment::RandomResizedCrop,
            replace_bad: true,
            reduced_jpeg_scale: true,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            prefetch: 2,
            slice: Slice::WHOLE,
        }
    }

    /// Index order, every good sample once, centre crops.
    pub fn eval(batch_size: usize) -> Self {
        LoaderConfig {
            shuffle: false,
            drop_last: false,
            augment: Augment::CentreCrop,
            replace_bad: false,
            ..Self::train(batch_size, 0)
        }
    }
}

/// What the trainer asks of the next batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSpec {
    pub image_size: usize,
    pub context_length: usize,
}

/// Where a loader is in its stream of batches: batch `batch` of epoch `epoch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub epoch: usize,
    pub batch: usize,
}

impl Position {
    pub(crate) fn next(self, batches_per_epoch: usize) -> Position {
        if self.batch + 1 >= batches_per_epoch {
            Position { epoch: self.epoch + 1, batch: 0 }
        } else {
            Position { epoch: self.epoch, batch: self.batch + 1 }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Batch {
    /// f32 `[rows, 3, size, size]`, CLIP-normalised, on the CPU.
    pub images: Tensor,
    /// u32 `[rows, context_length]`, on the CPU.
    pub tokens: Tensor,
    /// The dataset index of each row: one per place of the loader's slice,
    /// fewer at the end of an evaluation epoch, where evaluation left bad
    /// samples out, or where a place's substitutes all failed.
    /// For a streamed loader, the id of each row's sample: its shard's
    /// number in the list times 2^32 plus its number within the shard.
    pub indices: Vec<usize>,
    pub position: Position,
    /// A streamed loader's state after this batch.
    pub(crate) stream_state: Option<StreamState>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Where batches come from: a dataset read by index, or a shard stream.
// One per loader, behind an Arc: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Batches {
    Indexed(Maker),
    Streamed(StreamMaker),
}

impl Batches {
    pub(crate) fn make(&self, position: Position, spec: BatchSpec) -> Result<Batch> {
        match self {
            Batches::Indexed(maker) => maker.make(position, spec),
            Batches::Streamed(maker) => maker.make(position, spec),
        }
    }

    pub(crate) fn batches_per_epoch(&self) -> usize {
        match self {
            Batches::Indexed(maker) => maker.batches_per_epoch(),
            Batches::Streamed(maker) => maker.batches_per_epoch(),
        }
    }
}

pub struct Loader {
    batches: Arc<Batches>,
    slice: Slice,
    position: Position,
    prefetcher: Option<Prefetcher>,
}

impl Loader {
    pub fn new(dataset: Arc<dyn Dataset>, encoder: Arc<dyn CaptionEncoder>, config: LoaderConfig) -> Result<Self> {
        config.check()?;
        if dataset.is_empty() {
            return Err(Error::no_usable_sample(
                dataset.source(),
                "it holds no samples",
                dataset.open_report().clone(),
            ));
        }
        if u32::try_from(dataset.len()).is_err() {
            return Err(Error::option("dataset", format!("{} has more than 2^32 samples", dataset.source())));
        }
        if config.drop_last && dataset.len() < config.batch_size {
            return Err(Error::option(
                "batch size",
                format!("{} exceeds the {} samples of {}", config.batch_size, dataset.len(), dataset.source()),
            ));
        }
        let (workers, prefetch, slice) = (config.workers, config.prefetch, config.slice);
        Self::start(Batches::Indexed(Maker::new(dataset, encoder, config)?), slice, workers, prefetch)
    }

    /// A loader over a shard stream (see [`crate::ShardStream`]): this rank's
    /// slice of each batch from its own shards. The config's shuffling and
    /// dropping are the stream's own; batches per epoch are its samples
    /// per epoch over the batch size.
    pub fn streaming(stream: Arc<ShardStream>, encoder: Arc<dyn CaptionEncoder>, config: LoaderConfig) -> Result<Self> {
        let config = LoaderConfig { shuffle: true, drop_last: true, replace_bad: true, ..config };
        config.check()?;
        let (workers, prefetch, slice) = (config.workers, config.prefetch, config.slice);
        let maker = StreamMaker::new(stream, encoder, config)?;
        Self::start(Batches::Streamed(maker), slice, workers, prefetch)
    }

    fn start(batches: Batches, slice: Slice, workers: usize, prefetch: usize) -> Result<Self> {
        let batches = Arc::new(batches);
        let prefetcher = if workers > 0 { Some(Prefetcher::start(batches.clone(), prefetch)?) } else { None };
        Ok(Loader { batches, slice, position: Position::default(), prefetcher })
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.batches.batches_per_epoch()
    }

    /// The share of each batch this loader makes.
    pub fn slice(&self) -> Slice {
        self.slice
    }

    /// The position of the batch the next call to [`Loader::next_batch`] returns.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Continues from `position`, e.g. the one saved with a checkpoint; a
    /// streamed loader also from its `stream` state there (without one,
    /// only from an epoch's start).
    pub fn seek(&mut self, position: Position, stream: Option<StreamState>) -> Result<()> {
        if position.batch >= self.batches_per_epoch() {
            return Err(Error::option(
                "loader position",
                format!("batch {} of an epoch with {} batches", position.batch, self.batches_per_epoch()),
            ));
        }
        if let Batches::Streamed(maker) = self.batches.as_ref() {
            let state = maker.resume_state(position, stream)?;
            if state.position() != position {
                return Err(Error::option(
                    "stream state",
                    format!("it stands at {:?}, the checkpoint's loader at {position:?}", state.position()),
                ));
            }
            maker.set_anchor(state);
        }
        self.position = position;
        Ok(())
    }

    /// A streamed loader's state at its position: what a checkpoint records
    /// to resume it. `None` for a loader by index, whose position says all.
    pub fn stream_state(&self) -> Option<StreamState> {
        match self.batches.as_ref() {
            Batches::Indexed(_) => None,
            Batches::Streamed(maker) => Some(maker.anchor()),
        }
    }

    /// How the data is read, in words, for reports.
    pub fn reader(&self) -> String {
        match self.batches.as_ref() {
            Batches::Indexed(maker) => format!("random access over {} samples", maker.dataset().len()),
            Batches::Streamed(maker) => {
                let stream = maker.stream();
                let cfg = stream.config();
                let passes = match maker.extra_passes() {
                    0 => String::new(),
                    n => format!("; {n} extra pass(es) over a rank's shards to fill its epochs"),
                };
                format!(
                    "streamed: {} shards ({:.1} GiB), {} reader(s) per rank, shuffle buffer {}{}, {} samples per epoch{passes}",
                    stream.shards(),
                    stream.total_bytes() as f64 / (1u64 << 30) as f64,
                    cfg.readers,
                    cfg.shuffle_buffer,
                    if cfg.resampled { ", shards resampled" } else { "" },
                    stream.samples_per_epoch(),
                )
            }
        }
    }

    /// The batch at the current position, made at `spec`'s size; then moves on
    /// (past the epoch's last batch to the next epoch).
    pub fn next_batch(&mut self, spec: BatchSpec) -> Result<Batch> {
        if spec.image_size == 0 || spec.context_length == 0 {
            return Err(Error::option("batch spec", format!("{spec:?} has a zero size")));
        }
        let batch = match &self.prefetcher {
            Some(prefetcher) => prefetcher.take(self.position, spec),
            None => self.batches.make(self.position, spec),
        }?;
        if let (Batches::Streamed(maker), Some(state)) = (self.batches.as_ref(), &batch.stream_state) {
            maker.set_anchor(state.clone());
        }
        self.position = self.position.next(self.batches_per_epoch());
        Ok(batch)
    }

    /// The problems found so far: the source's own and those met while loading.
    pub fn report(&self) -> DataReport {
        match self.batches.as_ref() {
            Batches::Indexed(maker) => maker.report(),
            Batches::Streamed(maker) => maker.report(),
        }
    }
}
