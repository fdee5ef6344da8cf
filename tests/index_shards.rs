//! End to end: `reclip index-shards` writes open_clip's sizes.json with each
//! shard's complete samples, which reclip reads back; it never replaces a
//! sizes.json unless told to, and a truncated shard counts what it holds.

use reclip_data::{SIZES_FILE, expand_shard_list, read_sample_counts};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn reclip(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reclip")).args(args).current_dir(cwd).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A shard of `samples` image–caption pairs, then `extra` members (name,
/// data). The images are never decoded when counting, so any bytes do; each
/// member's data fits one 512-byte tar block, so a sample is 2048 bytes.
fn write_shard(path: &Path, samples: usize, extra: &[(&str, &[u8])]) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut append = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    };
    for i in 0..samples {
        append(&format!("{i:06}.jpg"), b"image bytes");
        append(&format!("{i:06}.txt"), format!("caption {i}").as_bytes());
    }
    for (name, data) in extra {
        append(name, data);
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, builder.into_inner().unwrap()).unwrap();
}

fn sizes(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(SIZES_FILE)).unwrap()).unwrap()
}

/// Two folders: `a` with 00000.tar (4 samples) and 00001.tar (3, and an
/// image without a caption), `b` with 00002.tar (2).
fn shards() -> (tempfile::TempDir, &'static str) {
    let root = tempfile::tempdir().unwrap();
    write_shard(&root.path().join("a/00000.tar"), 4, &[]);
    write_shard(&root.path().join("a/00001.tar"), 3, &[("lonely.jpg", b"no caption")]);
    write_shard(&root.path().join("b/00002.tar"), 2, &[]);
    (root, "a/{00000..00001}.tar::b/00002.tar")
}

fn absolute(root: &Path, list: &str) -> Vec<PathBuf> {
    expand_shard_list(list).unwrap().into_iter().map(|s| root.join(s)).collect()
}

#[test]
fn counts_complete_samples_into_a_sizes_file_per_folder() {
    let (root, list) = shards();
    let out = reclip(&["index-shards", "--data", list, "--workers", "2"], root.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sizes(&root.path().join("a")), json!({"00000.tar": 4, "00001.tar": 3}));
    assert_eq!(sizes(&root.path().join("b")), json!({"00002.tar": 2}));
    assert_eq!(read_sample_counts(&absolute(root.path(), list)).unwrap(), Some(vec![4, 3, 2]));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("3 shard(s), 9 complete sample(s)"), "{stdout}");
    assert!(stdout.contains("incomplete sample: 1") && stdout.contains("lonely"), "{stdout}");
}

#[test]
fn an_existing_sizes_file_is_replaced_only_with_overwrite() {
    let (root, list) = shards();
    assert!(reclip(&["index-shards", "--data", list], root.path()).status.success());
    let a = root.path().join("a").join(SIZES_FILE);
    let before = std::fs::read(&a).unwrap();
    let again = reclip(&["index-shards", "--data", list], root.path());
    assert_eq!(again.status.code(), Some(2));
    let stderr = text(&again.stderr);
    assert_eq!(stderr, "error: a/sizes.json already exists: pass --overwrite to replace it\n");
    assert_eq!(std::fs::read(&a).unwrap(), before);

    // Cut 00000.tar inside its third sample's image: two samples are left whole.
    let shard = root.path().join("a/00000.tar");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..2 * 2048 + 700]).unwrap();
    let replaced = reclip(&["index-shards", "--data", list, "--overwrite"], root.path());
    assert!(replaced.status.success(), "{}", text(&replaced.stderr));
    assert_eq!(sizes(&root.path().join("a")), json!({"00000.tar": 2, "00001.tar": 3}));
    assert_eq!(read_sample_counts(&absolute(root.path(), list)).unwrap(), Some(vec![2, 3, 2]));
    assert!(text(&replaced.stdout).contains("truncated or corrupt shard: 1"), "{}", text(&replaced.stdout));
    let left: Vec<_> = std::fs::read_dir(root.path().join("a")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 3, "only the shards and sizes.json: {left:?}");
}

#[test]
fn a_missing_shard_is_an_error_and_nothing_is_written() {
    let (root, _) = shards();
    let out = reclip(&["index-shards", "--data", "a/{00000..00002}.tar"], root.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: --data: shard a/00002.tar: ") && stderr.lines().count() == 1, "{stderr}");
    assert!(!root.path().join("a").join(SIZES_FILE).exists());
}
