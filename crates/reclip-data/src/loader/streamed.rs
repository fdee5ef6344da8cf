//! Making a rank's slice of each batch from its shard stream: the next
//! samples out of the shuffle buffer, decoded in parallel; a sample that
//! fails to decode gives its place to the next one of the stream (up to
//! [`MAX_SUBSTITUTES`] tries). The state after each batch rides with it, so
//! the loader can rewind to the batch it hands out next when a request
//! changes the size, and a checkpoint can record where the rank stands.

use super::assemble::{Filled, batch_of, decode_pool, encode_row, place_view};
use super::{Batch, BatchSpec, LoaderConfig, MAX_SUBSTITUTES, Position};
use crate::stream::{Cursor, Layout, RawSample, ShardStream, StreamState};
use crate::webdataset::decode_sample;
use crate::{CaptionEncoder, DataReport, Error, Problem, Result};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

pub(crate) struct StreamMaker {
    stream: Arc<ShardStream>,
    encoder: Arc<dyn CaptionEncoder>,
    config: LoaderConfig,
    batches_per_epoch: usize,
    layout: Layout,
    /// Started from the anchor when the first batch is asked for, and again
    /// whenever a batch other than the cursor's next is.
    cursor: Mutex<Option<Cursor>>,
    /// The state at the batch the loader hands out next: where a rewind goes.
    anchor: Mutex<StreamState>,
    problems: Arc<Mutex<DataReport>>,
    pool: Option<rayon::ThreadPool>,
}

impl StreamMaker {
    pub(crate) fn new(
        stream: Arc<ShardStream>,
        encoder: Arc<dyn CaptionEncoder>,
        config: LoaderConfig,
    ) -> Result<Self> {
        stream.check_ranks(config.slice.ranks)?;
        let batches = stream.samples_per_epoch() / config.batch_size as u64;
        if batches == 0 {
            return Err(Error::option(
                "batch size",
                format!(
                    "{} exceeds the {} samples of an epoch of {}",
                    config.batch_size,
                    stream.samples_per_epoch(),
                    stream.source()
                ),
            ));
        }
        let batches_per_epoch = usize::try_from(batches).unwrap_or(usize::MAX);
        let streamed = stream.config();
        let layout = Layout {
            source: stream.source().to_string(),
            shards: stream.shards(),
            seed: config.seed,
            rank: config.slice.rank,
            ranks: config.slice.ranks,
            readers: streamed.readers,
            shuffle_buffer: streamed.shuffle_buffer,
            resampled: streamed.resampled,
            samples_per_epoch: stream.samples_per_epoch(),
            batch_size: config.batch_size,
        };
        let problems = Arc::new(Mutex::new(DataReport::new(stream.source())));
        let anchor = Mutex::new(StreamState::epoch_start(layout.clone(), 0));
        let pool = decode_pool(config.workers)?;
        Ok(StreamMaker {
            stream,
            encoder,
            config,
            batches_per_epoch,
            layout,
            cursor: Mutex::new(None),
            anchor,
            problems,
            pool,
        })
    }

    pub(crate) fn batches_per_epoch(&self) -> usize {
        self.batches_per_epoch
    }

    pub(crate) fn report(&self) -> DataReport {
        let mut report = self.stream.open_report().clone();
        report.merge(&self.problems.lock().expect("problem log poisoned"));
        report
    }

    /// Says the loader's next batch is the one after `state`.
    pub(crate) fn set_anchor(&self, state: StreamState) {
        *self.anchor.lock().expect("anchor poisoned") = state;
    }

    pub(crate) fn anchor(&self) -> StreamState {
        self.anchor.lock().expect("anchor poisoned").clone()
    }

    /// The state a run resumes from, checked against this stream: the start
    /// of epoch `position.epoch` if `state` is `None`. The next batch starts
    /// a cursor from it.
    pub(crate) fn resume_state(&self, position: Position, state: Option<StreamState>) -> Result<StreamState> {
        let state = match state {
            Some(state) => state,
            None if position.batch == 0 => StreamState::epoch_start(self.layout.clone(), position.epoch),
            None => {
                return Err(Error::option(
                    "loader position",
                    format!(
                        "batch {} of epoch {} of a stream needs the stream's saved state",
                        position.batch, position.epoch
                    ),
                ));
            }
        };
        state.check(&self.layout, self.batches_per_epoch, self.stream.shards())?;
        *self.cursor.lock().expect("cursor poisoned") = None;
        Ok(state)
    }

    /// Passes a rank made over its shards beyond the first, so far.
    pub(crate) fn extra_passes(&self) -> u64 {
        self.anchor.lock().expect("anchor poisoned").extra_passes
    }

    pub(crate) fn stream(&self) -> &ShardStream {
        &self.stream
    }

    pub(crate) fn make(&self, pos: Position, spec: BatchSpec) -> Result<Batch> {
        let mut started = self.cursor.lock().expect("cursor poisoned");
        if started.as_ref().is_none_or(|cursor| cursor.position() != pos) {
            let anchor = self.anchor();
            if anchor.position() != pos {
                return Err(Error::LoaderStopped(format!(
                    "batch {pos:?} of the stream was asked for, but it stands at {:?}",
                    anchor.position()
                )));
            }
            // The old cursor's readers stop before the new one's start.
            *started = None;
            let (stream, layout, problems) = (self.stream.clone(), self.layout.clone(), self.problems.clone());
            *started = Some(Cursor::from_state(stream, layout, self.batches_per_epoch, problems, &anchor)?);
        }
        let cursor = started.as_mut().expect("a cursor was just ensured");
        let places = self.config.slice.places(self.config.batch_size);
        let raw = places.clone().map(|_| cursor.next_sample()).collect::<Result<Vec<_>>>()?;
        let plane = 3 * spec.image_size * spec.image_size;
        let mut images = vec![0f32; places.len() * plane];
        let encoder = self.encoder.as_ref();
        // A place's row from `raw`: its image written to `out`, its id and
        // token ids; or the problem that keeps the sample out.
        let fill_row = |place: usize, attempt: usize, raw: &RawSample, out: &mut [f32]| {
            let view = place_view(&self.config, pos, place, attempt, spec.image_size);
            let location = || format!("{}: sample {} of shard {}", self.stream.source(), raw.at.ordinal, raw.at.shard);
            decode_sample(&raw.image, raw.caption.clone(), &view, location)
                .map(|sample| encode_row(&sample, out, encoder, spec).map(|tokens| (raw.at.id(), tokens)))
        };
        let fill = |(row, (out, raw)): (usize, (&mut [f32], &RawSample))| fill_row(places.start + row, 0, raw, out);
        let first: Vec<std::result::Result<Result<Filled>, Problem>> = match &self.pool {
            Some(pool) => {
                pool.install(|| images.par_chunks_mut(plane).zip(raw.par_iter()).enumerate().map(fill).collect())
            }
            None => images.chunks_mut(plane).zip(raw.iter()).enumerate().map(fill).collect(),
        };
        let mut filled = Vec::with_capacity(first.len());
        for (row, outcome) in first.into_iter().enumerate() {
            let mut outcome = outcome;
            for attempt in 1..=MAX_SUBSTITUTES {
                let Err(problem) = outcome else { break };
                self.problems.lock().expect("problem log poisoned").record(problem);
                let substitute = cursor.next_sample()?;
                let out = &mut images[row * plane..(row + 1) * plane];
                outcome = fill_row(places.start + row, attempt, &substitute, out);
            }
            filled.push(match outcome {
                Ok(row) => Some(row?),
                Err(problem) => {
                    self.problems.lock().expect("problem log poisoned").record(problem);
                    None
                }
            });
        }
        if filled.iter().all(Option::is_none) {
            return Err(Error::no_usable_sample(self.stream.source(), "every sample failed", self.report()));
        }
        cursor.end_batch()?;
        let mut batch = batch_of(images, filled, spec, pos)?;
        batch.stream_state = Some(cursor.snapshot());
        Ok(batch)
    }
}
