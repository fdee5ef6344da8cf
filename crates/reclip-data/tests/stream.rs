mod common;

use common::{WordEncoder, jpeg_bytes, photo, shard, write};
use reclip_data::{
    BatchSpec, Loader, LoaderConfig, Position, ProblemKind, ShardList, ShardStream, Slice, StreamConfig, StreamState,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

fn spec(size: usize) -> BatchSpec {
    BatchSpec { image_size: size, context_length: 6 }
}

/// Writes `counts.len()` shards `NN.tar` into `dir`, shard `s` holding
/// `counts[s]` good samples, and returns the shard list.
fn write_shards(dir: &Path, counts: &[usize]) -> String {
    for (s, &n) in counts.iter().enumerate() {
        let members: Vec<(String, Vec<u8>)> = (0..n)
            .flat_map(|i| {
                let key = format!("{s:02}{i:04}");
                let jpeg = jpeg_bytes(&photo(20, 18, (s * 1000 + i) as u32), 80);
                [(format!("{key}.jpg"), jpeg), (format!("{key}.txt"), format!("shard {s} sample {i}").into_bytes())]
            })
            .collect();
        let named: Vec<(&str, Vec<u8>)> = members.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        write(&dir.join(format!("{s:02}.tar")), &shard(&named));
    }
    format!("{}/{{00..{:02}}}.tar", dir.display(), counts.len() - 1)
}

fn stream(list: &str, config: StreamConfig) -> Arc<ShardStream> {
    Arc::new(ShardStream::new(ShardList::open(list).unwrap(), config).unwrap())
}

fn counted(samples: u64) -> StreamConfig {
    StreamConfig { shuffle_buffer: 10, readers: 2, samples_per_epoch: Some(samples), ..StreamConfig::default() }
}

fn loader(stream: &Arc<ShardStream>, batch: usize, slice: Slice, workers: usize) -> Loader {
    let config = LoaderConfig { workers, slice, ..LoaderConfig::train(batch, 3) };
    Loader::streaming(stream.clone(), Arc::new(WordEncoder), config).unwrap()
}

fn shard_of(id: usize) -> usize {
    id >> 32
}

#[test]
fn two_ranks_read_disjoint_shards_and_together_every_sample_once_an_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let list = write_shards(dir.path(), &[8; 6]);
    let source = stream(&list, counted(48));
    let mut per_epoch: Vec<Vec<usize>> = Vec::new();
    let mut shards_of_rank: Vec<BTreeSet<usize>> = Vec::new();
    for rank in 0..2 {
        let mut l = loader(&source, 8, Slice { rank, ranks: 2 }, 1);
        assert_eq!(l.batches_per_epoch(), 6);
        let ids: Vec<usize> = (0..12).flat_map(|_| l.next_batch(spec(16)).unwrap().indices).collect();
        assert_eq!(ids.len(), 48);
        shards_of_rank.push(ids[..24].iter().map(|&id| shard_of(id)).collect());
        per_epoch.push(ids);
    }
    assert!(shards_of_rank[0].is_disjoint(&shards_of_rank[1]), "{shards_of_rank:?}");
    for epoch in 0..2 {
        let both: Vec<usize> = per_epoch.iter().flat_map(|ids| ids[epoch * 24..(epoch + 1) * 24].to_vec()).collect();
        let unique: BTreeSet<usize> = both.iter().copied().collect();
        assert_eq!(unique.len(), 48, "epoch {epoch}: every sample once");
    }
    // A new epoch: a new shard order and a new sample order.
    assert_ne!(per_epoch[0][..24], per_epoch[0][24..]);
    let reseeded = {
        let config = LoaderConfig { workers: 1, slice: Slice { rank: 0, ranks: 2 }, ..LoaderConfig::train(8, 4) };
        let mut l = Loader::streaming(source.clone(), Arc::new(WordEncoder), config).unwrap();
        (0..6).flat_map(|_| l.next_batch(spec(16)).unwrap().indices).collect::<Vec<_>>()
    };
    assert_ne!(reseeded, per_epoch[0][..24]);
}

#[test]
fn a_stream_resumed_from_its_state_makes_the_same_batches() {
    let dir = tempfile::tempdir().unwrap();
    let list = write_shards(dir.path(), &[7, 9, 5, 8, 6]);
    let source = stream(&list, counted(30));
    let mut by_workers = Vec::new();
    for workers in [0, 2] {
        let mut whole = loader(&source, 6, Slice::WHOLE, workers);
        let mut saved: Option<(Position, StreamState)> = None;
        let mut batches = Vec::new();
        for k in 0..13 {
            if k == 7 {
                saved = Some((whole.position(), whole.stream_state().unwrap()));
            }
            batches.push(whole.next_batch(spec(16)).unwrap());
        }
        let (position, state) = saved.unwrap();
        assert_eq!(position, Position { epoch: 1, batch: 2 });
        // Through bytes, as a checkpoint keeps it.
        let state = StreamState::from_bytes(&state.to_bytes(), "the test's state").unwrap();
        let mut resumed = loader(&source, 6, Slice::WHOLE, workers);
        resumed.seek(position, Some(state)).unwrap();
        for expected in &batches[7..] {
            let got = resumed.next_batch(spec(16)).unwrap();
            assert_eq!((got.position, &got.indices), (expected.position, &expected.indices), "workers {workers}");
            assert_eq!(got.images.to_vec_f32().unwrap(), expected.images.to_vec_f32().unwrap());
            assert_eq!(got.tokens.to_vec::<u32>().unwrap(), expected.tokens.to_vec::<u32>().unwrap());
        }
        by_workers.push(batches.iter().map(|b| b.indices.clone()).collect::<Vec<_>>());
    }
    assert_eq!(by_workers[0], by_workers[1], "decoding threads do not change the batches");
}

#[test]
fn a_change_of_image_size_keeps_the_samples_of_each_batch() {
    let dir = tempfile::tempdir().unwrap();
    let list = write_shards(dir.path(), &[10; 4]);
    let source = stream(&list, counted(40));
    let mut switched = loader(&source, 8, Slice::WHOLE, 2);
    let mut direct = loader(&source, 8, Slice::WHOLE, 2);
    for k in 0..8 {
        let size = if k < 3 { 16 } else { 24 };
        let a = switched.next_batch(spec(size)).unwrap();
        let b = direct.next_batch(spec(24)).unwrap();
        assert_eq!(a.indices, b.indices, "batch {k}");
    }
}

#[test]
fn a_rank_short_of_samples_reads_its_shards_again_and_no_rank_runs_dry() {
    let dir = tempfile::tempdir().unwrap();
    // 36 samples in shards of unequal size, 20 a rank an epoch: at least
    // one rank holds fewer than its share.
    let list = write_shards(dir.path(), &[2, 3, 14, 2, 3, 12]);
    let source = stream(&list, counted(40));
    let mut readers = Vec::new();
    for rank in 0..2 {
        let mut l = loader(&source, 4, Slice { rank, ranks: 2 }, 0);
        for _ in 0..(3 * l.batches_per_epoch()) {
            assert_eq!(l.next_batch(spec(16)).unwrap().len(), 2);
        }
        let epoch: Vec<usize> =
            (0..l.batches_per_epoch()).flat_map(|_| l.next_batch(spec(16)).unwrap().indices).collect();
        let shards: BTreeSet<usize> = epoch.into_iter().map(shard_of).collect();
        assert!(shards.len() <= 3, "rank {rank} read {shards:?}");
        readers.push(l.reader());
    }
    assert!(readers.iter().all(|r| r.contains("streamed: 6 shards") && r.contains("shuffle buffer 10")), "{readers:?}");
    assert!(readers.iter().any(|r| r.contains("extra pass")), "{readers:?}");
}

#[test]
fn resampled_shards_are_drawn_with_replacement_for_any_epoch_length() {
    let dir = tempfile::tempdir().unwrap();
    let list = write_shards(dir.path(), &[4; 3]);
    let source = stream(&list, StreamConfig { resampled: true, ..counted(40) });
    let mut l = loader(&source, 8, Slice::WHOLE, 1);
    assert_eq!(l.batches_per_epoch(), 5);
    let ids: Vec<usize> = (0..5).flat_map(|_| l.next_batch(spec(16)).unwrap().indices).collect();
    let mut seen = BTreeMap::new();
    ids.iter().for_each(|id| *seen.entry(*id).or_insert(0) += 1);
    assert_eq!(ids.len(), 40);
    assert!(seen.len() <= 12 && seen.values().any(|&n| n > 1), "{seen:?}");
    // More ranks than shards: each draws from all of them.
    let mut far = loader(&source, 8, Slice { rank: 7, ranks: 8 }, 0);
    assert_eq!(far.next_batch(spec(16)).unwrap().len(), 1);
}

#[test]
fn bad_shards_among_many_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let list = write_shards(dir.path(), &[6; 10]);
    std::fs::write(dir.path().join("03.tar"), b"not a tar archive at all, just some text").unwrap();
    let truncated = std::fs::read(dir.path().join("05.tar")).unwrap();
    std::fs::write(dir.path().join("05.tar"), &truncated[..truncated.len() / 2]).unwrap();
    let mut corrupt = std::fs::read(dir.path().join("07.tar")).unwrap();
    let jpeg_start = 512 + 100; // inside the first member's image data
    corrupt[jpeg_start..jpeg_start + 200].fill(0x55);
    std::fs::write(dir.path().join("07.tar"), &corrupt).unwrap();
    std::fs::remove_file(dir.path().join("09.tar")).unwrap();
    let source = stream(&list, counted(60));
    assert_eq!(source.shards(), 9, "the missing shard is left out when listed");
    let mut l = loader(&source, 6, Slice::WHOLE, 2);
    for _ in 0..(2 * l.batches_per_epoch()) {
        assert_eq!(l.next_batch(spec(16)).unwrap().len(), 6);
    }
    let report = l.report();
    assert_eq!(report.count(ProblemKind::MissingFile), 1, "{report}");
    assert!(report.count(ProblemKind::BrokenShard) >= 2, "{report}");
    assert!(report.count(ProblemKind::BadImage) >= 1, "{report}");
}

#[test]
fn opening_a_stream_reads_no_shard() {
    let dir = tempfile::tempdir().unwrap();
    for s in 0..50 {
        std::fs::write(dir.path().join(format!("{s:02}.tar")), b"garbage that no tar reader would accept").unwrap();
    }
    let list = format!("{}/{{00..49}}.tar", dir.path().display());
    let opened = ShardStream::new(ShardList::open(&list).unwrap(), counted(100)).unwrap();
    assert_eq!((opened.shards(), opened.samples_per_epoch()), (50, 100));
    // Without a count the stream says how to get one.
    let err = ShardStream::new(ShardList::open(&list).unwrap(), StreamConfig::default()).err().unwrap().to_string();
    assert!(err.contains("reclip index-shards") && err.contains("--samples-per-epoch"), "{err}");
    // And data that holds nothing fails on the first batch, naming the rank.
    let mut l = loader(&Arc::new(opened), 4, Slice::WHOLE, 0);
    let err = l.next_batch(spec(16)).unwrap_err().to_string();
    assert!(err.contains("no usable sample") && err.contains("unreadable tar header"), "{err}");
}
