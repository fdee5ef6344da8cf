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

mod assemble;
mod prefetch;

pub use assemble::MAX_SUBSTITUTES;

use crate::{Augment, CaptionEncoder, DataReport, Dataset, Error, Result};
use assemble::Maker;
use prefetch::Prefetcher;
use reclip_core::Tensor;
use std::ops::Range;
use std::sync::Arc;

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
    pub indices: Vec<usize>,
    pub position: Position,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

pub struct Loader {
    maker: Arc<Maker>,
    position: Position,
    prefetcher: Option<Prefetcher>,
}

impl Loader {
    pub fn new(dataset: Arc<dyn Dataset>, encoder: Arc<dyn CaptionEncoder>, config: LoaderConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::option("batch size", "must be at least 1"));
        }
        config.slice.check(&config)?;
        if config.workers > 0 && config.prefetch == 0 {
            return Err(Error::option("prefetch", "must be at least 1 when there are workers"));
        }
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
        let workers = config.workers;
        let prefetch = config.prefetch;
        let maker = Arc::new(Maker::new(dataset, encoder, config)?);
        let prefetcher = if workers > 0 { Some(Prefetcher::start(maker.clone(), prefetch)?) } else { None };
        Ok(Loader { maker, position: Position::default(), prefetcher })
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.maker.batches_per_epoch()
    }

    /// The share of each batch this loader makes.
    pub fn slice(&self) -> Slice {
        self.maker.slice()
    }

    /// The position of the batch the next call to [`Loader::next_batch`] returns.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Continues from `position`, e.g. the one saved with a checkpoint.
    pub fn seek(&mut self, position: Position) -> Result<()> {
        if position.batch >= self.batches_per_epoch() {
            return Err(Error::option(
                "loader position",
                format!("batch {} of an epoch with {} batches", position.batch, self.batches_per_epoch()),
            ));
        }
        self.position = position;
        Ok(())
    }

    /// The batch at the current position, made at `spec`'s size; then moves on
    /// (past the epoch's last batch to the next epoch).
    pub fn next_batch(&mut self, spec: BatchSpec) -> Result<Batch> {
        if spec.image_size == 0 || spec.context_length == 0 {
            return Err(Error::option("batch spec", format!("{spec:?} has a zero size")));
        }
        let batch = match &self.prefetcher {
            Some(prefetcher) => prefetcher.take(self.position, spec),
            None => self.maker.make(self.position, spec),
        };
        self.position = self.position.next(self.batches_per_epoch());
        batch
    }

    /// The problems found so far: the dataset's own and those met while loading.
    pub fn report(&self) -> DataReport {
        self.maker.report()
    }

    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        self.maker.dataset()
    }
}
