mod common;

use common::{WordEncoder, jpeg_bytes, photo, png_bytes, solid, write};
use reclip_data::{BatchSpec, DEFAULT_TEMPLATES, Dataset, ImageFolder, Loader, LoaderConfig, ProblemKind, View};
use std::sync::Arc;

fn build(root: &std::path::Path) {
    write(&root.join("cat/1.jpg"), &jpeg_bytes(&photo(20, 16, 1), 90));
    write(&root.join("cat/2.PNG"), &png_bytes(&solid(6, 6, [10, 20, 30]).into()));
    write(&root.join("cat/notes.txt"), b"not an image");
    write(&root.join("cat/.hidden.jpg"), b"ignored");
    write(&root.join("dog_house/nested/3.jpeg"), &jpeg_bytes(&photo(16, 20, 3), 90));
    write(&root.join("dog_house/4.jpg"), b"\xff\xd8\xff\xe0 corrupt");
    write(&root.join("elephant/5.png"), &png_bytes(&solid(7, 5, [200, 100, 0]).into()));
}

#[test]
fn classes_come_from_sorted_folders_and_bad_files_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let folder = ImageFolder::open(dir.path(), None).unwrap();
    assert_eq!(folder.classnames(), ["cat", "dog house", "elephant"]);
    assert_eq!(folder.len(), 5);
    assert_eq!((0..5).map(|i| folder.label(i)).collect::<Vec<_>>(), vec![0, 0, 1, 1, 2]);
    let view = View::eval(4);
    assert_eq!(folder.load(1, &view).unwrap().image.pixel(1, 1), [10, 20, 30]);
    assert_eq!(folder.load(4, &view).unwrap().caption, "a photo of a elephant.");

    let set = folder.into_zero_shot(DEFAULT_TEMPLATES.iter().map(|t| t.to_string()).collect());
    assert_eq!(set.num_classes(), 3);
    assert_eq!(set.prompts(1), vec!["a photo of a dog house."]);
    assert_eq!(set.labels, vec![0, 0, 1, 1, 2]);

    let mut loader =
        Loader::new(set.images.clone(), Arc::new(WordEncoder), LoaderConfig { workers: 0, ..LoaderConfig::eval(8) })
            .unwrap();
    let batch = loader.next_batch(BatchSpec { image_size: 4, context_length: 8 }).unwrap();
    assert_eq!(batch.indices, vec![0, 1, 3, 4], "dog_house/4.jpg sorts before nested/3.jpeg and is corrupt");
    let report = loader.report();
    assert_eq!(report.count(ProblemKind::BadImage), 1, "{report}");
    assert!(report.examples()[0].location.ends_with("4.jpg"), "{report}");
}

#[cfg(unix)]
#[test]
fn a_dangling_link_is_counted_as_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    std::os::unix::fs::symlink(dir.path().join("nowhere.jpg"), dir.path().join("elephant/6.jpg")).unwrap();
    let folder = ImageFolder::open(dir.path(), None).unwrap();
    assert_eq!(folder.len(), 6);
    let config = LoaderConfig { workers: 0, ..LoaderConfig::eval(8) };
    let mut loader = Loader::new(Arc::new(folder), Arc::new(WordEncoder), config).unwrap();
    let batch = loader.next_batch(BatchSpec { image_size: 4, context_length: 8 }).unwrap();
    assert_eq!(batch.indices, vec![0, 1, 3, 4]);
    let report = loader.report();
    assert_eq!((report.count(ProblemKind::MissingFile), report.count(ProblemKind::BadImage)), (1, 1), "{report}");
    assert!(report.to_string().contains("elephant/6.jpg"), "{report}");
}

#[test]
fn a_classnames_file_names_the_folders_in_order() {
    let dir = tempfile::tempdir().unwrap();
    build(&dir.path().join("data"));
    let names = dir.path().join("names.txt");
    write(&names, b"tabby cat\n\nkennel\nelephant\n");
    let folder = ImageFolder::open(dir.path().join("data"), Some(&names)).unwrap();
    assert_eq!(folder.classnames(), ["tabby cat", "kennel", "elephant"]);

    write(&names, b"only one\n");
    let err = ImageFolder::open(dir.path().join("data"), Some(&names)).err().unwrap().to_string();
    assert!(err.contains("names.txt") && err.contains("1 class names for 3 class folders"), "{err}");
}

#[test]
fn a_folder_without_class_folders_or_images_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = ImageFolder::open(dir.path(), None).err().unwrap().to_string();
    assert!(err.contains("no class folders") && err.contains(&dir.path().display().to_string()), "{err}");
    write(&dir.path().join("empty_class/readme.txt"), b"nothing here");
    let err = ImageFolder::open(dir.path(), None).err().unwrap().to_string();
    assert!(err.contains("no usable sample in"), "{err}");
}
