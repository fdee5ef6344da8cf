mod common;

use common::WordEncoder;
use reclip_data::{
    Augment, BatchSpec, CLIP_MEAN, CLIP_STD, CaptionEncoder, DataReport, Dataset, Error, Loader, LoaderConfig,
    Position, Problem, ProblemKind, Rgb8Image, Sample, Synthetic, SyntheticConfig, View,
};
use std::collections::HashSet;
use std::sync::Arc;

/// Sample `i` is a flat image whose red value encodes `i` and whose green
/// value encodes the crop seed; the indices in `bad` fail to load.
struct Numbered {
    len: usize,
    bad: HashSet<usize>,
    report: DataReport,
}

impl Numbered {
    fn new(len: usize, bad: &[usize]) -> Arc<Self> {
        Arc::new(Numbered { len, bad: bad.iter().copied().collect(), report: DataReport::new("numbered") })
    }
}

impl Dataset for Numbered {
    fn source(&self) -> &str {
        "numbered"
    }

    fn len(&self) -> usize {
        self.len
    }

    fn load(&self, index: usize, view: &View) -> Result<Sample, Problem> {
        if self.bad.contains(&index) {
            return Err(Problem::new(ProblemKind::BadImage, format!("sample {index}"), "made bad"));
        }
        let pixel = [(index % 251) as u8, (view.seed % 256) as u8, 7];
        let image = Rgb8Image::new(view.size, view.size, pixel.repeat(view.size * view.size));
        Ok(Sample { image, caption: format!("sample {index}") })
    }

    fn open_report(&self) -> &DataReport {
        &self.report
    }
}

fn spec(size: usize) -> BatchSpec {
    BatchSpec { image_size: size, context_length: 5 }
}

fn loader(dataset: Arc<dyn Dataset>, config: LoaderConfig) -> Loader {
    Loader::new(dataset, Arc::new(WordEncoder), config).unwrap()
}

fn train(batch: usize, workers: usize) -> LoaderConfig {
    LoaderConfig { workers, ..LoaderConfig::train(batch, 42) }
}

#[test]
fn batches_depend_on_the_seed_and_position_only_not_on_workers() {
    let data = Synthetic::new(SyntheticConfig { seed: 3, train_len: 40, heldout_len: 0, crowded_percent: 0 }).train();
    let run = |workers: usize, prefetch: usize| {
        let mut l = loader(data.clone(), LoaderConfig { prefetch, ..train(6, workers) });
        (0..9).map(|_| l.next_batch(spec(16)).unwrap()).collect::<Vec<_>>()
    };
    let reference = run(0, 1);
    assert_eq!(reference[6].position, Position { epoch: 1, batch: 0 }, "40 samples make 6 batches of 6");
    for (workers, prefetch) in [(1, 1), (3, 4)] {
        for (a, b) in reference.iter().zip(run(workers, prefetch)) {
            assert_eq!(a.indices, b.indices);
            assert_eq!(a.images.to_vec_f32().unwrap(), b.images.to_vec_f32().unwrap());
            assert_eq!(a.tokens.to_vec::<u32>().unwrap(), b.tokens.to_vec::<u32>().unwrap());
        }
    }
    let other_seed = {
        let mut l = loader(data.clone(), LoaderConfig { workers: 0, ..LoaderConfig::train(6, 43) });
        l.next_batch(spec(16)).unwrap()
    };
    assert_ne!(other_seed.indices, reference[0].indices);
}

#[test]
fn every_epoch_is_a_new_permutation_of_every_sample() {
    let mut l = loader(Numbered::new(23, &[]), LoaderConfig { drop_last: false, ..train(5, 2) });
    assert_eq!(l.batches_per_epoch(), 5);
    let mut epochs = Vec::new();
    for _ in 0..3 {
        let order: Vec<usize> = (0..5).flat_map(|_| l.next_batch(spec(2)).unwrap().indices).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..23).collect::<Vec<_>>());
        epochs.push(order);
    }
    assert_ne!(epochs[0], epochs[1]);
    assert_ne!(epochs[1], epochs[2]);
}

#[test]
fn training_drops_the_last_partial_batch_and_evaluation_keeps_it() {
    let mut t = loader(Numbered::new(23, &[]), train(5, 0));
    assert_eq!(t.batches_per_epoch(), 4);
    let sizes: Vec<usize> = (0..5).map(|_| t.next_batch(spec(2)).unwrap().len()).collect();
    assert_eq!(sizes, vec![5; 5]);
    assert_eq!(t.position(), Position { epoch: 1, batch: 1 });

    let mut e = loader(Numbered::new(23, &[]), LoaderConfig { workers: 0, ..LoaderConfig::eval(5) });
    let batches: Vec<Vec<usize>> = (0..5).map(|_| e.next_batch(spec(2)).unwrap().indices).collect();
    assert_eq!(batches[4], vec![20, 21, 22]);
    assert_eq!(batches.concat(), (0..23).collect::<Vec<_>>(), "evaluation visits samples in order");
}

#[test]
fn a_run_resumed_at_a_position_sees_the_same_batches() {
    let data = Numbered::new(50, &[]);
    let mut first = loader(data.clone(), train(8, 2));
    for _ in 0..8 {
        first.next_batch(spec(4)).unwrap();
    }
    let position = first.position();
    assert_eq!(position, Position { epoch: 1, batch: 2 });
    let mut resumed = loader(data, train(8, 1));
    resumed.seek(position, None).unwrap();
    for _ in 0..6 {
        let (a, b) = (first.next_batch(spec(4)).unwrap(), resumed.next_batch(spec(4)).unwrap());
        assert_eq!((a.position, &a.indices), (b.position, &b.indices));
        assert_eq!(a.images.to_vec_f32().unwrap(), b.images.to_vec_f32().unwrap(), "same crops");
    }
    assert!(resumed.seek(Position { epoch: 0, batch: 6 }, None).unwrap_err().to_string().contains("6 batches"));
}

#[test]
fn a_new_size_mid_run_remakes_the_batches_made_ahead() {
    let data = Synthetic::new(SyntheticConfig { seed: 9, train_len: 64, heldout_len: 0, crowded_percent: 0 }).train();
    let mut prefetching = loader(data.clone(), LoaderConfig { prefetch: 4, ..train(4, 2) });
    let mut direct = loader(data, train(4, 0));
    for step in 0..8 {
        let size = if step < 3 { 16 } else { 32 };
        let (a, b) = (prefetching.next_batch(spec(size)).unwrap(), direct.next_batch(spec(size)).unwrap());
        assert_eq!(a.images.dims(), &[4, 3, size, size]);
        assert_eq!(a.indices, b.indices);
        assert_eq!(a.images.to_vec_f32().unwrap(), b.images.to_vec_f32().unwrap(), "step {step}");
    }
    let longer = prefetching.next_batch(BatchSpec { image_size: 32, context_length: 9 }).unwrap();
    assert_eq!(longer.tokens.dims(), &[4, 9]);
}

#[test]
fn images_and_tokens_have_the_requested_layout() {
    let mut l = loader(Numbered::new(10, &[]), LoaderConfig { workers: 0, ..LoaderConfig::eval(3) });
    let batch = l.next_batch(BatchSpec { image_size: 2, context_length: 4 }).unwrap();
    assert_eq!(batch.images.dims(), &[3, 3, 2, 2]);
    let images = batch.images.to_vec_f32().unwrap();
    let expected_red = (2.0 / 255.0 - CLIP_MEAN[0]) / CLIP_STD[0];
    let expected_blue = (7.0 / 255.0 - CLIP_MEAN[2]) / CLIP_STD[2];
    assert!(images[2 * 12..2 * 12 + 4].iter().all(|&v| (v - expected_red).abs() < 1e-6), "row 2's red plane");
    assert!(images[2 * 12 + 8..3 * 12].iter().all(|&v| (v - expected_blue).abs() < 1e-6), "row 2's blue plane");
    assert_eq!(batch.tokens.to_vec::<u32>().unwrap()[8..12], WordEncoder.encode("sample 2", 4)[..]);
}

#[test]
fn bad_samples_are_replaced_in_training_and_reported_once() {
    let bad = [3, 4, 5, 17, 30];
    let mut l = loader(Numbered::new(40, &bad), train(8, 2));
    let mut seen = HashSet::new();
    for _ in 0..15 {
        let batch = l.next_batch(spec(2)).unwrap();
        assert_eq!(batch.len(), 8, "substitutes keep the batch full");
        assert!(batch.indices.iter().all(|i| !bad.contains(i)), "{:?}", batch.indices);
        seen.extend(batch.indices);
    }
    assert_eq!(seen.len(), 35, "every good sample was used");
    let report = l.report();
    assert_eq!(report.count(ProblemKind::BadImage), 5, "each bad sample counted once over three epochs:\n{report}");
    assert_eq!(report.examples().len(), 5);
}

#[test]
fn evaluation_leaves_bad_samples_out() {
    let mut l = loader(Numbered::new(10, &[1, 4, 6, 7, 8]), LoaderConfig { workers: 2, ..LoaderConfig::eval(3) });
    let batches: Vec<Vec<usize>> = (0..4).map(|_| l.next_batch(spec(2)).unwrap().indices).collect();
    assert_eq!(batches, vec![vec![0, 2], vec![3, 5], vec![], vec![9]]);
    assert_eq!(l.report().count(ProblemKind::BadImage), 5);

    let mut all_bad = loader(Numbered::new(4, &[0, 1, 2, 3]), LoaderConfig { workers: 0, ..LoaderConfig::eval(2) });
    assert!(all_bad.next_batch(spec(2)).unwrap().is_empty(), "half the samples may still be good");
    assert!(matches!(all_bad.next_batch(spec(2)), Err(Error::NoUsableSample { .. })));
}

#[test]
fn a_dataset_with_nothing_usable_is_an_error_naming_it() {
    let all_bad: Vec<usize> = (0..4).collect();
    let mut l = loader(Numbered::new(4, &all_bad), train(2, 1));
    let err = l.next_batch(spec(2)).unwrap_err();
    assert!(matches!(err, Error::NoUsableSample { .. }));
    let text = err.to_string();
    assert!(text.contains("no usable sample in numbered") && text.contains("made bad"), "{text}");
}

struct Short;

impl CaptionEncoder for Short {
    fn encode(&self, _: &str, context_length: usize) -> Vec<u32> {
        vec![1; context_length - 1]
    }
}

#[test]
fn bad_options_and_a_wrong_encoder_are_errors() {
    let err = Loader::new(Numbered::new(4, &[]), Arc::new(Short), LoaderConfig { workers: 0, ..LoaderConfig::eval(2) })
        .unwrap()
        .next_batch(spec(2))
        .unwrap_err();
    assert!(err.to_string().contains("returned 4 token ids for context length 5"), "{err}");
    let too_big = Loader::new(Numbered::new(4, &[]), Arc::new(WordEncoder), train(5, 0)).err().unwrap();
    assert!(too_big.to_string().contains("5 exceeds the 4 samples of numbered"), "{too_big}");
    let zero = Loader::new(Numbered::new(4, &[]), Arc::new(WordEncoder), train(0, 0)).err().unwrap();
    assert!(zero.to_string().contains("batch size"), "{zero}");
    let mut l = loader(Numbered::new(4, &[]), train(2, 0));
    assert!(l.next_batch(spec(0)).is_err());
}

#[test]
fn crops_are_seeded_per_place_and_epoch() {
    let mut l = loader(Numbered::new(16, &[]), LoaderConfig { augment: Augment::RandomResizedCrop, ..train(4, 0) });
    let green = |b: &reclip_data::Batch| -> Vec<u32> {
        let v = b.images.to_vec_f32().unwrap();
        (0..b.len()).map(|row| ((v[(row * 3 + 1) * 4] * CLIP_STD[1] + CLIP_MEAN[1]) * 255.0).round() as u32).collect()
    };
    let seeds: Vec<Vec<u32>> = (0..8).map(|_| green(&l.next_batch(spec(2)).unwrap())).collect();
    let distinct: HashSet<u32> = seeds.concat().into_iter().collect();
    assert!(distinct.len() > 20, "crop seeds repeat: {seeds:?}");
}
