mod common;

use common::{WordEncoder, jpeg_bytes, photo, png_bytes, shard, solid, write};
use reclip_data::{BatchSpec, Dataset, Loader, LoaderConfig, ProblemKind, View, WebDataset};
use std::path::Path;
use std::sync::Arc;

fn jpeg(seed: u32) -> Vec<u8> {
    jpeg_bytes(&photo(24, 20, seed), 85)
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn shards_load_their_samples_and_count_every_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let first = shard(&[
        ("s/000000.jpg", jpeg(0)),
        ("s/000000.txt", text("photo zero")),
        ("s/000001.png", png_bytes(&solid(8, 8, [255, 0, 0]).into())),
        ("s/000001.txt", text("  a red square\n")),
        ("s/000001.json", text("{}")),
        ("s/000002.txt", text("a caption without an image")),
        ("s/000003.jpg", b"\xff\xd8\xff garbage".to_vec()),
        ("s/000003.txt", text("a corrupt image")),
        ("s/000004.jpg", jpeg(4)),
        ("s/000004.txt", text("")),
        ("s/000005.JPEG", jpeg(5)),
        ("s/000005.txt", text("upper-case extension")),
    ]);
    write(&dir.path().join("shard-00.tar"), &first);
    let second = shard(&[
        ("000100.jpg", jpeg(100)),
        ("000100.txt", text("one hundred")),
        ("000101.txt", text("caption first")),
        ("000101.jpg", jpeg(101)),
        ("000102.jpg", jpeg(102)),
        ("000102.txt", text("cut off")),
    ]);
    // Cut the second shard inside the data of 000102.jpg.
    let cut = second.windows(10).position(|w| w == b"000102.jpg").unwrap() + 512 + 100;
    write(&dir.path().join("shard-01.tar"), &second[..cut]);

    let list = format!("{0}/shard-{{00..01}}.tar::{0}/missing.tar", dir.path().display());
    let dataset = Arc::new(WebDataset::open(&list).unwrap());
    assert_eq!(dataset.len(), 7);
    let open = dataset.open_report();
    assert_eq!(open.count(ProblemKind::IncompleteSample), 2, "{open}");
    assert_eq!(open.count(ProblemKind::BrokenShard), 1, "{open}");
    assert_eq!(open.count(ProblemKind::MissingFile), 1, "{open}");
    let text = open.to_string();
    for needle in ["shard-00.tar:s/000002", "shard-01.tar:000102", "missing.tar"] {
        assert!(text.contains(needle), "report lacks {needle}:\n{text}");
    }

    let view = View::eval(8);
    assert_eq!(dataset.load(0, &view).unwrap().caption, "photo zero");
    let red = dataset.load(1, &view).unwrap();
    assert_eq!((red.caption.as_str(), red.image.pixel(4, 4)), ("a red square", [255, 0, 0]));
    assert_eq!(dataset.load(4, &view).unwrap().caption, "upper-case extension");
    assert_eq!(dataset.load(6, &view).unwrap().caption, "caption first");

    let config = LoaderConfig { workers: 2, ..LoaderConfig::eval(4) };
    let mut loader = Loader::new(dataset, Arc::new(WordEncoder), config).unwrap();
    let spec = BatchSpec { image_size: 8, context_length: 4 };
    let mut seen = Vec::new();
    for _ in 0..loader.batches_per_epoch() {
        seen.extend(loader.next_batch(spec).unwrap().indices);
    }
    assert_eq!(seen, vec![0, 1, 4, 5, 6]);
    let report = loader.report();
    assert_eq!(report.count(ProblemKind::BadImage), 1, "{report}");
    assert_eq!(report.count(ProblemKind::BadCaption), 1, "{report}");
    let text = report.to_string();
    assert!(text.contains("shard-00.tar:s/000003") && text.contains("shard-00.tar:s/000004"), "{text}");
    // Nothing was unpacked next to the shards.
    assert_eq!(files_under(dir.path()), vec!["shard-00.tar", "shard-01.tar"]);
}

#[test]
fn a_shard_cut_between_members_keeps_every_sample_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = shard(&[("a.jpg", jpeg(1)), ("a.txt", text("a")), ("b.jpg", jpeg(2)), ("b.txt", text("b"))]);
    let path = dir.path().join("cut.tar");
    write(&path, &bytes[..bytes.len() - 1024]);
    let dataset = WebDataset::open(path.to_str().unwrap()).unwrap();
    assert_eq!(dataset.len(), 2);
    assert_eq!(dataset.open_report().count(ProblemKind::BrokenShard), 1);
    assert_eq!(dataset.open_report().total(), 1);
}

#[test]
fn a_corrupt_header_keeps_the_samples_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = shard(&[
        ("a.jpg", jpeg(1)),
        ("a.txt", text("a")),
        ("b.jpg", jpeg(2)),
        ("b.txt", text("b")),
        ("c.jpg", jpeg(3)),
        ("c.txt", text("c")),
    ]);
    let header = bytes.windows(5).position(|w| w == b"c.jpg").unwrap();
    bytes[header + 100..header + 108].copy_from_slice(b"garbage!");
    let path = dir.path().join("corrupt.tar");
    write(&path, &bytes);
    let dataset = WebDataset::open(path.to_str().unwrap()).unwrap();
    assert_eq!(dataset.len(), 2);
    let report = dataset.open_report();
    assert_eq!(report.count(ProblemKind::BrokenShard), 1, "{report}");
    assert!(report.to_string().contains("corrupt.tar"), "{report}");
}

#[test]
fn shards_without_a_complete_sample_are_an_error_naming_the_list() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("0.tar"), &shard(&[("x.txt", text("only a caption"))]));
    let list = format!("{}/{{0..1}}.tar", dir.path().display());
    let err = WebDataset::open(&list).err().unwrap().to_string();
    assert!(err.contains("no usable sample in") && err.contains("{0..1}.tar"), "{err}");
    assert!(err.contains("incomplete sample: 1") && err.contains("missing file: 1"), "{err}");
}
