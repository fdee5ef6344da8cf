//! open_clip's `sizes.json`: beside WebDataset shards, a JSON object from
//! each shard's file name to its number of samples, e.g.
//! `{"00000.tar": 10000, "00001.tar": 9998}`. open_clip reads it to know a
//! shard list's size without reading the shards; `reclip index-shards`
//! writes it.
//!
//! A list whose shards only some directories describe is refused rather than
//! half-counted: a size made of known and guessed parts would silently set
//! the wrong epoch length.

use crate::files::read_text_file;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file name open_clip looks for in the shards' directory.
pub const SIZES_FILE: &str = "sizes.json";

/// The sample count of each shard, in the order of `shards`, from the
/// `sizes.json` in its directory (a bare file name's directory is `.`).
/// `None` when no shard's directory has one; an error naming the file when
/// one is malformed, lacks a shard's entry, or when some of the directories
/// have the file and others do not.
pub fn read_sample_counts(shards: &[PathBuf]) -> Result<Option<Vec<u64>>> {
    let mut dirs: Vec<&Path> = Vec::new();
    for shard in shards {
        let dir = directory(shard);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for &dir in &dirs {
        let path = dir.join(SIZES_FILE);
        // Any entry of that name counts as present, so that a dangling link
        // or a FIFO is refused by the read below instead of passed over.
        match std::fs::symlink_metadata(&path) {
            Ok(_) => present.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => absent.push(path),
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    let Some(first) = present.first() else { return Ok(None) };
    if let Some(missing) = absent.first() {
        let msg = format!("not found, but {} is: every shard's directory needs one", first.display());
        return Err(Error::format(missing, msg));
    }
    let files: HashMap<&Path, HashMap<String, u64>> =
        dirs.iter().map(|&dir| Ok((dir, parse(&dir.join(SIZES_FILE))?))).collect::<Result<_>>()?;
    let counts = shards.iter().map(|shard| {
        let dir = directory(shard);
        let path = dir.join(SIZES_FILE);
        let name = shard
            .file_name()
            .ok_or_else(|| Error::format(&path, format!("cannot hold {}, which has no file name", shard.display())))?;
        let name = name.to_string_lossy();
        files[dir].get(name.as_ref()).copied().ok_or_else(|| Error::format(&path, format!("names no entry for {name}")))
    });
    counts.collect::<Result<Vec<_>>>().map(Some)
}

/// The directory whose `sizes.json` describes `shard`.
fn directory(shard: &Path) -> &Path {
    match shard.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The entries of the `sizes.json` at `path`, every value checked.
fn parse(path: &Path) -> Result<HashMap<String, u64>> {
    let text = read_text_file(path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::format(path, format!("not JSON: {e}")))?;
    let serde_json::Value::Object(entries) = value else {
        return Err(Error::format(path, "not a JSON object of shard names to sample counts"));
    };
    entries
        .into_iter()
        .map(|(name, count)| match count.as_u64() {
            Some(n) => Ok((name, n)),
            None => Err(Error::format(path, format!("{name:?} has {count}, not a non-negative whole sample count"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_sizes(dir: &Path, json: &str) {
        std::fs::write(dir.join(SIZES_FILE), json).unwrap();
    }

    fn error(shards: &[PathBuf]) -> String {
        read_sample_counts(shards).unwrap_err().to_string()
    }

    #[test]
    fn counts_come_in_the_order_of_the_shards() {
        let dir = tempfile::tempdir().unwrap();
        write_sizes(dir.path(), r#"{"00000.tar": 3, "00001.tar": 0, "00002.tar": 12}"#);
        let shards: Vec<PathBuf> = ["00002.tar", "00000.tar", "00001.tar"].map(|s| dir.path().join(s)).into();
        assert_eq!(read_sample_counts(&shards).unwrap(), Some(vec![12, 3, 0]));
    }

    #[test]
    fn each_directory_describes_its_own_shards() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        for (dir, json) in [(&a, r#"{"x.tar": 1}"#), (&b, r#"{"x.tar": 2, "y.tar": 5}"#)] {
            std::fs::create_dir(dir).unwrap();
            write_sizes(dir, json);
        }
        let shards = vec![a.join("x.tar"), b.join("y.tar"), b.join("x.tar"), a.join("x.tar")];
        assert_eq!(read_sample_counts(&shards).unwrap(), Some(vec![1, 5, 2, 1]));
    }

    #[test]
    fn no_sizes_file_anywhere_is_none() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("a")).unwrap();
        let shards = vec![root.path().join("x.tar"), root.path().join("a/y.tar")];
        assert_eq!(read_sample_counts(&shards).unwrap(), None);
    }

    #[test]
    fn a_shard_without_an_entry_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_sizes(dir.path(), r#"{"00000.tar": 3}"#);
        let shards = vec![dir.path().join("00000.tar"), dir.path().join("00003.tar")];
        let err = error(&shards);
        let path = dir.path().join(SIZES_FILE);
        assert_eq!(err, format!("{}: names no entry for 00003.tar", path.display()));
    }

    #[test]
    fn a_directory_without_the_file_is_refused_when_another_has_it() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("b")).unwrap();
        write_sizes(root.path(), r#"{"x.tar": 1}"#);
        let err = error(&[root.path().join("x.tar"), root.path().join("b/y.tar")]);
        let missing = root.path().join("b").join(SIZES_FILE);
        assert!(err.starts_with(&format!("{}: not found, but ", missing.display())), "{err}");
    }

    #[test]
    fn malformed_files_and_values_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let shards = vec![dir.path().join("x.tar")];
        let path = dir.path().join(SIZES_FILE).display().to_string();
        for (json, why) in [
            ("{\"x.tar\": 1,", "not JSON"),
            ("[1, 2]", "not a JSON object"),
            (r#"{"x.tar": -1}"#, r#""x.tar" has -1, not a non-negative"#),
            (r#"{"x.tar": 2.5}"#, r#""x.tar" has 2.5, not a non-negative"#),
            (r#"{"x.tar": "7"}"#, r#""x.tar" has "7", not a non-negative"#),
            (r#"{"x.tar": 1, "y.tar": null}"#, r#""y.tar" has null"#),
        ] {
            write_sizes(dir.path(), json);
            let err = error(&shards);
            assert!(err.starts_with(&format!("{path}: {why}")), "{json}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn a_fifo_in_place_of_the_file_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        if crate::files::make_fifo(&dir.path().join(SIZES_FILE)).is_none() {
            return;
        }
        let err = error(&[dir.path().join("x.tar")]);
        assert!(err.ends_with("sizes.json: not a regular file (a FIFO)"), "{err}");
    }

    #[test]
    fn a_bare_file_name_is_described_by_the_current_directory() {
        assert_eq!(directory(Path::new("00000.tar")), Path::new("."));
        assert_eq!(directory(Path::new("data/00000.tar")), Path::new("data"));
    }
}
