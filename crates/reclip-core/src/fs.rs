//! Files that are never seen half-written: checkpoints, reports, metrics;
//! and what a path that is not a regular file is, for the refusals of
//! readers that open only regular files.

use std::io::Write;
use std::path::{Path, PathBuf};

/// An I/O error and the file or folder it happened to.
#[derive(Debug, thiserror::Error)]
// Not `source`: the message already holds the I/O error, and a chained
// source would print it twice.
#[error("{path}: {error}")]
pub struct IoError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
    move |error| IoError { path: path.to_path_buf(), error }
}

/// What a file that is not a regular file is, in words ("a FIFO"), for a
/// refusal: opening a FIFO blocks until a writer comes, and a device such
/// as `/dev/zero` never ends, so readers check the type before opening.
pub fn file_kind(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "neither a file nor a folder"
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder
/// (created if need be), synced, then renamed over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_names_what_failed() {
        let dir = std::env::temp_dir().join(format!("reclip-core-fs-{}", std::process::id()));
        let path = dir.join("sub").join("report.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary file is left");

        // A folder that cannot be created is named, not the file in it.
        let blocked = path.join("inner").join("x.json");
        let err = write_atomic(&blocked, b"").unwrap_err();
        assert_eq!(err.path, path.join("inner"));
        assert!(err.to_string().starts_with(&format!("{}: ", path.join("inner").display())), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
