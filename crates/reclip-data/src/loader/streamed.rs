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
    cursor: Mutex<Cursor>,
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
        let cursor = Cursor::new(stream.clone(), layout, batches_per_epoch, problems.clone())?;
        let anchor = Mutex::new(cursor.snapshot());
        let pool = decode_pool(config.workers)?;
        Ok(StreamMaker {
            stream,
            encoder,
            config,
            batches_per_epoch,
            cursor: Mutex::new(cursor),
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
    /// of epoch `position.epoch` if `state` is `None`.
    pub(crate) fn resume_state(&self, position: Position, state: Option<StreamState>) -> Result<StreamState> {
        let mut cursor = self.cursor.lock().expect("cursor poisoned");
        match state {
            Some(state) => cursor.restore(&state)?,
            None if position.batch == 0 => cursor.start_epoch(position.epoch)?,
            None => {
                return Err(Error::option(
                    "loader position",
                    format!(
                        "batch {} of epoch {} of a stream needs the stream's saved state",
                        position.batch, position.epoch
                    ),
                ));
            }
        }
        Ok(cursor.snapshot())
    }

    /// Passes a rank made over its shards beyond the first, so far.
    pub(crate) fn extra_passes(&self) -> u64 {
        self.anchor.lock().expect("anchor poisoned").extra_passes
    }

    pub(crate) fn stream(&self) -> &ShardStream {
        &self.stream
    }

    pub(crate) fn make(&self, pos: Position, spec: BatchSpec) -> Result<Batch> {
        let mut cursor = self.cursor.lock().expect("cursor poisoned");
        if cursor.position() != pos {
            let anchor = self.anchor();
            if anchor.position() != pos {
                return Err(Error::LoaderStopped(format!(
                    "batch {pos:?} of the stream was asked for, but it stands at {:?}",
                    anchor.position()
                )));
            }
            cursor.restore(&anchor)?;
        }
        let places = self.config.slice.places(self.config.batch_size);
        let raw = places.clone().map(|_| cursor.next_sample()).collect::<Result<Vec<_>>>()?;
        let plane = 3 * spec.image_size * spec.image_size;
        let mut images = vec![0f32; places.len() * plane];
        let encoder = self.encoder.as_ref();
        // A place's sample, or the problem that keeps it out.
        let decode = |place: usize, attempt: usize, raw: &RawSample| {
            let view = place_view(&self.config, pos, place, attempt, spec.image_size);
            let location = || format!("{}: sample {} of shard {}", self.stream.source(), raw.at.ordinal, raw.at.shard);
            decode_sample(&raw.image, raw.caption.clone(), &view, location).map(|sample| (raw.at.id(), sample))
        };
        let fill = |(row, (out, raw)): (usize, (&mut [f32], &RawSample))| {
            let decoded = decode(places.start + row, 0, raw);
            decoded.map(|(id, sample)| encode_row(&sample, out, encoder, spec).map(|tokens| (id, tokens)))
        };
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
                outcome = decode(places.start + row, attempt, &substitute)
                    .map(|(id, sample)| encode_row(&sample, out, encoder, spec).map(|tokens| (id, tokens)));
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
