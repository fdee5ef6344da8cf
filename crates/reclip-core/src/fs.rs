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

/// Why [`open_regular`] did not open a file.
#[derive(Debug)]
pub enum OpenRefusal {
    Io(std::io::Error),
    /// Not a regular file: what it is ([`file_kind`]).
    NotRegular(&'static str),
    /// A regular file of `len` bytes, more than allowed.
    TooLarge {
        len: u64,
    },
}

impl From<std::io::Error> for OpenRefusal {
    fn from(e: std::io::Error) -> Self {
        OpenRefusal::Io(e)
    }
}

/// Opens `path` for reading if it is a regular file (after following links;
/// checked before opening) of at most `max_bytes`, with its length. The
/// reader stops one byte past `max_bytes`, so a file that grew meanwhile
/// reads as longer than allowed rather than without end.
pub fn open_regular(path: &Path, max_bytes: u64) -> Result<(std::io::Take<std::fs::File>, u64), OpenRefusal> {
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(OpenRefusal::NotRegular(file_kind(metadata.file_type())));
    }
    let len = metadata.len();
    if len > max_bytes {
        return Err(OpenRefusal::TooLarge { len });
    }
    Ok((std::io::Read::take(std::fs::File::open(path)?, max_bytes.saturating_add(1)), len))
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
