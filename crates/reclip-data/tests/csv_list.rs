mod common;

use common::{WordEncoder, jpeg_bytes, photo, png_bytes, solid, write};
use reclip_data::{
    BatchSpec, CLIP_MEAN, CLIP_STD, CsvDataset, CsvOptions, Dataset, Error, Loader, LoaderConfig, ProblemKind, View,
};
use std::sync::Arc;

const SPEC: BatchSpec = BatchSpec { image_size: 8, context_length: 6 };

fn eval_loader(dataset: Arc<dyn Dataset>) -> Loader {
    Loader::new(dataset, Arc::new(WordEncoder), LoaderConfig { workers: 0, ..LoaderConfig::eval(16) }).unwrap()
}

/// A list with four good rows and one of every kind of bad row or file.
fn build_list(dir: &std::path::Path) -> std::path::PathBuf {
    let images = dir.join("images");
    write(&images.join("photo.jpg"), &jpeg_bytes(&photo(40, 30, 1), 90));
    write(&images.join("red.png"), &png_bytes(&solid(12, 10, [255, 0, 0]).into()));
    write(
        &images.join("grey.png"),
        &png_bytes(&image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(9, 9, image::Luma([77])))),
    );
    let rgba = image::RgbaImage::from_pixel(10, 10, image::Rgba([0, 0, 255, 40]));
    write(&images.join("alpha.png"), &png_bytes(&rgba.into()));
    write(&images.join("corrupt.jpg"), b"\xff\xd8\xff\xe0 this is not a jpeg at all");
    let jpeg = jpeg_bytes(&photo(40, 30, 2), 90);
    write(&images.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]);
    let list = "filepath\ttitle\n\
        images/photo.jpg\ta noisy photo\n\
        images/red.png\ta red square\n\
        images/corrupt.jpg\tcorrupt bytes\n\
        images/grey.png\ta grey patch\n\
        images/missing.jpg\ta file that is not there\n\
        images/photo.jpg\t   \n\
        images/photo.jpg\ttoo\tmany fields\n\
        \ta row without a path\n\
        images/truncated.jpg\thalf a jpeg\n\
        images/alpha.png\ta translucent blue square\n";
    let path = dir.join("list.tsv");
    write(&path, list.as_bytes());
    path
}

#[test]
fn a_list_loads_its_good_rows_and_counts_every_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = build_list(dir.path());
    let dataset = Arc::new(CsvDataset::open(&path, &CsvOptions::default()).unwrap());
    assert_eq!(dataset.len(), 7, "rows with a path and a caption");
    let open = dataset.open_report();
    assert_eq!(open.count(ProblemKind::MalformedRow), 2);
    assert_eq!(open.count(ProblemKind::BadCaption), 1);
    assert!(open.examples().iter().any(|p| p.location.ends_with("list.tsv:7")), "{open}");

    let mut loader = eval_loader(dataset.clone());
    let batch = loader.next_batch(SPEC).unwrap();
    assert_eq!(batch.indices, vec![0, 1, 3, 6], "photo, red, grey, alpha");
    assert_eq!(batch.images.dims(), &[4, 3, 8, 8]);
    assert_eq!(batch.tokens.dims(), &[4, 6]);

    let report = loader.report();
    assert_eq!(report.count(ProblemKind::BadImage), 2, "{report}");
    assert_eq!(report.count(ProblemKind::MissingFile), 1, "{report}");
    assert_eq!(report.total(), 6, "{report}");
    let text = report.to_string();
    for name in ["corrupt.jpg", "truncated.jpg", "missing.jpg", "list.tsv:8", "list.tsv:9"] {
        assert!(text.contains(name), "report lacks {name}:\n{text}");
    }

    // Pixel values survive decoding and normalisation: red stays red, grey
    // becomes equal channels, and alpha is dropped.
    let images = batch.images.to_vec_f32().unwrap();
    let plane = 64;
    let value = |row: usize, channel: usize| images[(row * 3 + channel) * plane + 27];
    let normalised = |v: f32, c: usize| (v / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
    for (row, rgb) in [(1, [255.0, 0.0, 0.0]), (2, [77.0; 3]), (3, [0.0, 0.0, 255.0])] {
        for (c, v) in rgb.into_iter().enumerate() {
            assert!((value(row, c) - normalised(v, c)).abs() < 0.02, "row {row} channel {c}");
        }
    }
}

#[test]
fn separator_and_column_names_are_options_and_quoting_works() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("sub").join("a.png"), &png_bytes(&solid(4, 4, [9, 9, 9]).into()));
    let elsewhere = dir.path().join("elsewhere.png");
    write(&elsewhere, &png_bytes(&solid(4, 4, [1, 2, 3]).into()));
    let list = format!("caption,image\n\"red, green and blue\",a.png\nabsolute path,{}\n", elsewhere.display());
    let path = dir.path().join("sub").join("list.csv");
    write(&path, list.as_bytes());
    let options = CsvOptions { separator: b',', image_key: "image".into(), caption_key: "caption".into() };
    let dataset = CsvDataset::open(&path, &options).unwrap();
    assert!(dataset.open_report().is_clean());
    let view = View::eval(4);
    let relative = dataset.load(0, &view).unwrap();
    assert_eq!((relative.caption.as_str(), relative.image.pixel(0, 0)), ("red, green and blue", [9, 9, 9]));
    assert_eq!(dataset.load(1, &view).unwrap().image.pixel(0, 0), [1, 2, 3]);
}

#[test]
fn a_missing_column_is_an_error_naming_the_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("list.tsv");
    write(&path, b"path\ttitle\nx.jpg\tx\n");
    let err = CsvDataset::open(&path, &CsvOptions::default()).err().unwrap().to_string();
    assert!(err.contains("list.tsv") && err.contains("\"filepath\"") && err.contains("\"path\""), "{err}");
}

#[test]
fn a_list_without_a_usable_row_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.tsv");
    write(&path, b"filepath\ttitle\nx.jpg\t\n\tcaption\n");
    match CsvDataset::open(&path, &CsvOptions::default()) {
        Err(Error::NoUsableSample { dataset, report }) => {
            assert!(dataset.ends_with("empty.tsv"));
            assert_eq!(report.total(), 2);
        }
        other => panic!("expected NoUsableSample, got {:?}", other.err()),
    }
}

#[test]
fn a_list_whose_every_image_is_bad_fails_at_load_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.tsv");
    write(&path, b"filepath\ttitle\na.jpg\ta\nb.jpg\tb\n");
    let dataset = Arc::new(CsvDataset::open(&path, &CsvOptions::default()).unwrap());
    let mut loader =
        Loader::new(dataset, Arc::new(WordEncoder), LoaderConfig { workers: 0, ..LoaderConfig::train(2, 0) }).unwrap();
    let err = loader.next_batch(SPEC).unwrap_err().to_string();
    assert!(err.contains("no usable sample in") && err.contains("gone.tsv") && err.contains("a.jpg"), "{err}");
}
