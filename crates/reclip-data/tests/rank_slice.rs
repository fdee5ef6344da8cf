//! A rank's slice of each batch is exactly its rows of the batch a single
//! process makes, whatever the number of ranks, workers or bad samples.

mod common;

use common::WordEncoder;
use reclip_data::{
    Batch, BatchSpec, DataReport, Dataset, Loader, LoaderConfig, Position, Problem, ProblemKind, Sample, Slice,
    Synthetic, SyntheticConfig, View,
};
use std::collections::HashSet;
use std::sync::Arc;

/// The synthetic training split with some indices that fail to load.
struct Flaky {
    inner: Arc<dyn Dataset>,
    bad: HashSet<usize>,
}

impl Dataset for Flaky {
    fn source(&self) -> &str {
        "flaky"
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn load(&self, index: usize, view: &View) -> Result<Sample, Problem> {
        if self.bad.contains(&index) {
            return Err(Problem::new(ProblemKind::BadImage, format!("sample {index}"), "made bad"));
        }
        self.inner.load(index, view)
    }

    fn open_report(&self) -> &DataReport {
        self.inner.open_report()
    }
}

const BATCH: usize = 12;
const SPEC: BatchSpec = BatchSpec { image_size: 16, context_length: 6 };

fn synthetic(len: usize) -> Arc<dyn Dataset> {
    Synthetic::new(SyntheticConfig { seed: 5, train_len: len, heldout_len: 0, crowded_percent: 0 }).train()
}

fn config(slice: Slice, workers: usize) -> LoaderConfig {
    LoaderConfig { slice, workers, prefetch: 2, ..LoaderConfig::train(BATCH, 11) }
}

fn loader(data: &Arc<dyn Dataset>, config: LoaderConfig) -> Loader {
    Loader::new(data.clone(), Arc::new(WordEncoder), config).unwrap()
}

/// `count` batches from `start`.
fn draw(loader: &mut Loader, start: Position, count: usize) -> Vec<Batch> {
    loader.seek(start, None).unwrap();
    (0..count).map(|_| loader.next_batch(SPEC).unwrap()).collect()
}

/// What a batch holds, images as bits so that equality is bitwise.
fn content(batches: &[&Batch]) -> (Vec<usize>, Vec<u32>, Vec<u32>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for b in batches {
        out.0.extend(&b.indices);
        out.1.extend(b.images.to_vec_f32().unwrap().into_iter().map(f32::to_bits));
        out.2.extend(b.tokens.to_vec::<u32>().unwrap());
    }
    out
}

/// For 1 to 4 ranks, with and without workers, the ranks' slices of each
/// batch from `start` on, put together in rank order, are the batch of a
/// single process. Returns the single process's report.
fn assert_slices_make_the_whole(
    data: &Arc<dyn Dataset>,
    base: LoaderConfig,
    start: Position,
    count: usize,
) -> DataReport {
    let mut whole = loader(data, LoaderConfig { workers: 0, ..base.clone() });
    let reference = draw(&mut whole, start, count);
    for ranks in 1..=4 {
        for workers in [0, 2] {
            let slices: Vec<Vec<Batch>> = (0..ranks)
                .map(|rank| {
                    let mut l = loader(data, LoaderConfig { slice: Slice { rank, ranks }, workers, ..base.clone() });
                    assert_eq!(l.batches_per_epoch(), whole.batches_per_epoch(), "the epoch is the global one");
                    draw(&mut l, start, count)
                })
                .collect();
            for (k, expected) in reference.iter().enumerate() {
                let parts: Vec<&Batch> = slices.iter().map(|rank| &rank[k]).collect();
                assert!(parts.iter().all(|p| p.position == expected.position), "{ranks} ranks, batch {k}");
                assert_eq!(content(&parts), content(&[expected]), "{ranks} ranks, {workers} workers, batch {k}");
            }
        }
    }
    whole.report()
}

#[test]
fn slices_of_synthetic_batches_put_together_are_the_single_process_batches() {
    let data = synthetic(50);
    let base = config(Slice::WHOLE, 0);
    // 50 samples make 4 batches of 12: six batches cross into epoch 1, and
    // a resumed run crosses from epoch 2 into 3.
    assert_slices_make_the_whole(&data, base.clone(), Position::default(), 6);
    assert_slices_make_the_whole(&data, base, Position { epoch: 2, batch: 3 }, 2);
}

#[test]
fn each_rank_makes_its_share_of_every_batch() {
    let data = synthetic(50);
    let mut l = loader(&data, config(Slice { rank: 2, ranks: 3 }, 1));
    assert_eq!(l.slice(), Slice { rank: 2, ranks: 3 });
    for _ in 0..5 {
        let batch = l.next_batch(SPEC).unwrap();
        assert_eq!(batch.images.dims(), &[4, 3, 16, 16]);
        assert_eq!(batch.tokens.dims(), &[4, 6]);
    }
    assert_eq!(Slice { rank: 2, ranks: 4 }.places(12), 6..9);
    assert_eq!(Slice::WHOLE.places(12), 0..12);
    assert_eq!(LoaderConfig::train(12, 0).slice, Slice::WHOLE);
    assert_eq!(LoaderConfig::eval(12).slice, Slice::WHOLE);
}

#[test]
fn ranks_substitute_for_bad_samples_as_a_single_process_does() {
    // Every third sample is bad, so substitutes are drawn, some of them bad too.
    let bad = (0..50).filter(|i| i % 3 == 0).collect();
    let data: Arc<dyn Dataset> = Arc::new(Flaky { inner: synthetic(50), bad });
    let report = assert_slices_make_the_whole(&data, config(Slice::WHOLE, 0), Position::default(), 6);
    assert!(report.count(ProblemKind::BadImage) > 10, "few bad samples were met:\n{report}");
    // Without substitutes the slices are uneven but still the single process's rows.
    let leave_out = LoaderConfig { replace_bad: false, ..config(Slice::WHOLE, 0) };
    assert_slices_make_the_whole(&data, leave_out, Position { epoch: 1, batch: 2 }, 3);
}

#[test]
fn slices_that_cannot_share_a_batch_are_refused() {
    let data = synthetic(50);
    let refusal =
        |config: LoaderConfig| Loader::new(data.clone(), Arc::new(WordEncoder), config).err().unwrap().to_string();
    let no_ranks = refusal(config(Slice { rank: 0, ranks: 0 }, 0));
    assert!(no_ranks.contains("at least 1 rank"), "{no_ranks}");
    let past_the_end = refusal(config(Slice { rank: 3, ranks: 3 }, 0));
    assert!(past_the_end.contains("rank 3 of 3 ranks"), "{past_the_end}");
    let uneven = refusal(LoaderConfig { slice: Slice { rank: 0, ranks: 3 }, ..LoaderConfig::train(10, 0) });
    assert!(uneven.contains("invalid batch size: 10 is not divisible by the 3 ranks"), "{uneven}");
    let evaluation = refusal(LoaderConfig { slice: Slice { rank: 1, ranks: 2 }, ..LoaderConfig::eval(12) });
    assert!(evaluation.contains("last partial batch") && evaluation.contains("2 ranks"), "{evaluation}");
}
