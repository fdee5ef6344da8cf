//! Making one batch, or a rank's slice of it: the epoch's order, each place's
//! sample (or a substitute for a bad one), decoding and normalising in
//! parallel, tokenising.

use super::{Batch, BatchSpec, LoaderConfig, Position};
use crate::seed::mix;
use crate::{CaptionEncoder, DataReport, Dataset, Error, Result, Sample, View};
use rand::Rng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use reclip_core::{Device, Tensor};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How many substitutes are tried for a place whose sample is bad.
pub const MAX_SUBSTITUTES: usize = 8;

// Distinguish the random streams drawn from one seed.
const ORDER_STREAM: u64 = 1;
const CROP_STREAM: u64 = 2;
const SUBSTITUTE_STREAM: u64 = 3;

/// A place of a batch that got a sample: its dataset index and token ids.
pub(super) type Filled = (usize, Vec<u32>);

/// Writes `sample`'s normalised image into `out` and returns its token ids.
pub(super) fn encode_row(
    sample: &Sample,
    out: &mut [f32],
    encoder: &dyn CaptionEncoder,
    spec: BatchSpec,
) -> Result<Vec<u32>> {
    sample.image.normalise_into(out);
    let tokens = encoder.encode(&sample.caption, spec.context_length);
    if tokens.len() != spec.context_length {
        return Err(Error::EncoderLength { got: tokens.len(), expected: spec.context_length });
    }
    Ok(tokens)
}

/// The batch of the places that got a sample; `images` holds a plane per place.
pub(super) fn batch_of(
    mut images: Vec<f32>,
    filled: Vec<Option<Filled>>,
    spec: BatchSpec,
    position: Position,
) -> Result<Batch> {
    let plane = 3 * spec.image_size * spec.image_size;
    if filled.iter().any(Option::is_none) {
        images = images.chunks(plane).zip(&filled).filter(|(_, f)| f.is_some()).flat_map(|(c, _)| c).copied().collect();
    }
    let (indices, tokens): (Vec<usize>, Vec<Vec<u32>>) = filled.into_iter().flatten().unzip();
    let b = indices.len();
    Ok(Batch {
        images: Tensor::from_vec(images, [b, 3, spec.image_size, spec.image_size], &Device::Cpu)?,
        tokens: Tensor::from_vec(tokens.concat(), [b, spec.context_length], &Device::Cpu)?,
        indices,
        position,
        stream_state: None,
    })
}

/// The decoding threads a config asks for (none: the caller's thread).
pub(super) fn decode_pool(workers: usize) -> Result<Option<rayon::ThreadPool>> {
    match workers {
        0 => Ok(None),
        n => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("reclip-data-{i}"))
            .build()
            .map(Some)
            .map_err(|e| Error::option("workers", e.to_string())),
    }
}

/// The view of a batch place's `attempt`-th sample: its crop seeded by the
/// place's global coordinates, so that no rank, worker or timing changes it.
pub(super) fn place_view(config: &LoaderConfig, pos: Position, place: usize, attempt: usize, size: usize) -> View {
    let coords = [CROP_STREAM, config.seed, pos.epoch as u64, pos.batch as u64, place as u64, attempt as u64];
    View { size, augment: config.augment, seed: mix(&coords), reduced_jpeg_scale: config.reduced_jpeg_scale }
}

pub(crate) struct Maker {
    dataset: Arc<dyn Dataset>,
    encoder: Arc<dyn CaptionEncoder>,
    config: LoaderConfig,
    known_bad: Vec<AtomicBool>,
    bad_count: AtomicUsize,
    problems: Mutex<DataReport>,
    order: Mutex<Option<(usize, Arc<Vec<u32>>)>>,
    pool: Option<rayon::ThreadPool>,
}

impl Maker {
    pub(crate) fn new(
        dataset: Arc<dyn Dataset>,
        encoder: Arc<dyn CaptionEncoder>,
        config: LoaderConfig,
    ) -> Result<Self> {
        let pool = decode_pool(config.workers)?;
        Ok(Maker {
            known_bad: (0..dataset.len()).map(|_| AtomicBool::new(false)).collect(),
            bad_count: AtomicUsize::new(0),
            problems: Mutex::new(DataReport::new(dataset.source())),
            order: Mutex::new(None),
            dataset,
            encoder,
            config,
            pool,
        })
    }

    pub(crate) fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    pub(crate) fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last { n / b } else { n.div_ceil(b) }
    }

    pub(crate) fn report(&self) -> DataReport {
        let mut report = self.dataset.open_report().clone();
        report.merge(&self.problems.lock().expect("problem log poisoned"));
        report
    }

    /// The dataset indices of epoch `epoch` in visiting order.
    fn order(&self, epoch: usize) -> Arc<Vec<u32>> {
        let mut cached = self.order.lock().expect("order cache poisoned");
        if let Some((e, order)) = cached.as_ref()
            && *e == epoch
        {
            return order.clone();
        }
        let mut order: Vec<u32> = (0..self.dataset.len() as u32).collect();
        if self.config.shuffle {
            order.shuffle(&mut reclip_core::rng(mix(&[self.config.seed, ORDER_STREAM, epoch as u64])));
        }
        let order = Arc::new(order);
        *cached = Some((epoch, order.clone()));
        order
    }

    pub(crate) fn make(&self, pos: Position, spec: BatchSpec) -> Result<Batch> {
        let order = self.order(pos.epoch);
        let start = pos.batch * self.config.batch_size;
        // The global batch's places that exist (fewer at the end of an
        // evaluation epoch), and of them this slice's, numbered globally so
        // that each place is seeded as in a single process.
        let available = self.config.batch_size.min(order.len() - start);
        let share = self.config.slice.places(self.config.batch_size);
        let (first, last) = (share.start.min(available), share.end.min(available));
        let plane = 3 * spec.image_size * spec.image_size;
        let mut images = vec![0f32; (last - first) * plane];
        let fill = |(row, out): (usize, &mut [f32])| -> Result<Option<Filled>> {
            let place = first + row;
            let Some((index, sample)) = self.load_place(pos, place, order[start + place] as usize, spec.image_size)
            else {
                return Ok(None);
            };
            encode_row(&sample, out, self.encoder.as_ref(), spec).map(|tokens| Some((index, tokens)))
        };
        let filled: Vec<Result<Option<Filled>>> = match &self.pool {
            Some(pool) => pool.install(|| images.par_chunks_mut(plane).enumerate().map(fill).collect()),
            None => images.chunks_mut(plane).enumerate().map(fill).collect(),
        };
        let filled = filled.into_iter().collect::<Result<Vec<_>>>()?;
        // Without replacement a batch of bad samples is just empty; with it,
        // nine tries per place all failing means the data is unusable.
        let all_bad = self.bad_count.load(Ordering::Relaxed) == self.dataset.len();
        if filled.iter().all(Option::is_none) && (self.config.replace_bad || all_bad) {
            // The report is never clean here: every sample tried was recorded.
            return Err(Error::no_usable_sample(self.dataset.source(), "every sample failed", self.report()));
        }
        batch_of(images, filled, spec, pos)
    }

    /// The sample for one place of a batch: its own, or (when replacing bad
    /// samples) the first good one of its substitutes. Which candidates are
    /// tried depends only on the place, not on which samples are already
    /// known to be bad.
    fn load_place(&self, pos: Position, place: usize, first: usize, size: usize) -> Option<(usize, Sample)> {
        let coords = [self.config.seed, pos.epoch as u64, pos.batch as u64, place as u64];
        let mut substitutes = reclip_core::rng(mix(&[SUBSTITUTE_STREAM, coords[0], coords[1], coords[2], coords[3]]));
        let attempts = if self.config.replace_bad { MAX_SUBSTITUTES + 1 } else { 1 };
        for attempt in 0..attempts {
            let index = if attempt == 0 { first } else { substitutes.random_range(0..self.dataset.len()) };
            if self.known_bad[index].load(Ordering::Relaxed) {
                continue;
            }
            match self.dataset.load(index, &place_view(&self.config, pos, place, attempt, size)) {
                Ok(sample) => return Some((index, sample)),
                Err(problem) => {
                    if !self.known_bad[index].swap(true, Ordering::Relaxed) {
                        self.bad_count.fetch_add(1, Ordering::Relaxed);
                        self.problems.lock().expect("problem log poisoned").record(problem);
                    }
                }
            }
        }
        None
    }
}
