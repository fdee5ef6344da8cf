//! Reading files that a data source names, which may be anything: only
//! regular files are opened (opening a FIFO blocks until a writer comes,
//! possibly forever; `/dev/zero` and `/dev/urandom` never end), and no more
//! bytes are read than the ceiling for that kind of file allows. The check
//! uses `std::fs::metadata`, which follows symbolic links, before the file is
//! opened; the read itself is bounded too, so a file growing meanwhile cannot
//! exceed the ceiling.

use crate::limits::{ByteCeiling, IMAGE_FILE, TEXT_FILE};
use crate::{Error, Problem, ProblemKind};
use reclip_core::fs::OpenRefusal;
use std::fs::File;
use std::io::{ErrorKind, Read, Take};
use std::path::Path;

/// Why a file was not read.
#[derive(Debug)]
pub(crate) enum FileError {
    Io(std::io::Error),
    /// Not a regular file, or over its ceiling: the reason, in words.
    Refused(String),
}

impl From<std::io::Error> for FileError {
    fn from(e: std::io::Error) -> Self {
        FileError::Io(e)
    }
}

impl FileError {
    /// As a problem with one sample or shard (a missing file is `MissingFile`).
    pub fn into_problem(self, location: String) -> Problem {
        match self {
            FileError::Io(e) => io_problem(location, &e),
            FileError::Refused(reason) => Problem::new(ProblemKind::UnreadableFile, location, reason),
        }
    }

    /// As the error of a file a whole source depends on (a list, templates).
    pub fn into_error(self, path: &Path) -> Error {
        match self {
            FileError::Io(e) => Error::io(path, e),
            FileError::Refused(reason) => Error::format(path, reason),
        }
    }
}

/// [`reclip_core::fs::open_regular`]'s refusal in this crate's words;
/// `too_large` says why a file of that many bytes is refused.
fn refused(refusal: OpenRefusal, too_large: impl FnOnce(u64) -> String) -> FileError {
    match refusal {
        OpenRefusal::Io(e) => FileError::Io(e),
        OpenRefusal::NotRegular(kind) => FileError::Refused(format!("not a regular file ({kind})")),
        OpenRefusal::TooLarge { len } => FileError::Refused(too_large(len)),
    }
}

/// Opens `path` for reading if it is a regular file (a tar shard, of any size).
pub(crate) fn open_regular(path: &Path) -> Result<File, FileError> {
    let opened = reclip_core::fs::open_regular(path, u64::MAX);
    let (file, _) = opened.map_err(|r| refused(r, |len| format!("a shard of {len} bytes")))?;
    Ok(file.into_inner())
}

/// Opens `path` for reading if it is a regular file of at most
/// `ceiling.bytes` bytes (`what` names it in the refusal); the reader stops
/// one byte past the ceiling, so a file that grew can still be told apart.
pub(crate) fn open_bounded(path: &Path, ceiling: ByteCeiling, what: &str) -> Result<(Take<File>, u64), FileError> {
    reclip_core::fs::open_regular(path, ceiling.bytes).map_err(|r| refused(r, |len| ceiling.refuse(what, len)))
}

/// Reads a regular file of at most `ceiling.bytes` bytes.
pub(crate) fn read_bounded(path: &Path, ceiling: ByteCeiling, what: &str) -> Result<Vec<u8>, FileError> {
    let (mut reader, len) = open_bounded(path, ceiling, what)?;
    let mut bytes = Vec::with_capacity(len as usize);
    reader.read_to_end(&mut bytes)?;
    if bytes.len() as u64 > ceiling.bytes {
        return Err(FileError::Refused(grew(ceiling, what)));
    }
    Ok(bytes)
}

/// Why a file that was under its ceiling when opened is refused after all.
pub(crate) fn grew(ceiling: ByteCeiling, what: &str) -> String {
    format!("{what} that grew past {} while being read", ceiling.describe())
}

/// Reads an image file whole: a regular file of at most
/// [`MAX_IMAGE_FILE_BYTES`](crate::MAX_IMAGE_FILE_BYTES). The error is a
/// problem to report (`MissingFile`, or `UnreadableFile` with the reason).
pub fn read_image_file(path: &Path) -> Result<Vec<u8>, Problem> {
    read_bounded(path, IMAGE_FILE, "an image file").map_err(|e| e.into_problem(path.display().to_string()))
}

/// Reads a text file whole: a regular file of at most
/// [`MAX_TEXT_FILE_BYTES`](crate::MAX_TEXT_FILE_BYTES), in UTF-8. The error
/// names the file, and for bad UTF-8 the line and byte offset.
pub fn read_text_file(path: &Path) -> Result<String, Error> {
    let bytes = read_bounded(path, TEXT_FILE, "a text file").map_err(|e| e.into_error(path))?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::format(path, format!("not UTF-8: line {line} has an invalid byte sequence at byte offset {offset}"))
    })
}

pub(crate) fn io_problem(location: String, e: &std::io::Error) -> Problem {
    let kind = if e.kind() == ErrorKind::NotFound { ProblemKind::MissingFile } else { ProblemKind::UnreadableFile };
    Problem::new(kind, location, e.to_string())
}

/// Makes a FIFO at `path` for tests; `None` where `mkfifo` is not available.
#[cfg(test)]
pub(crate) fn make_fifo(path: &Path) -> Option<()> {
    let status = std::process::Command::new("mkfifo").arg(path).status().ok()?;
    status.success().then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_TEXT_FILE_BYTES;

    #[test]
    fn fifos_devices_and_folders_are_refused_without_opening_them() {
        let dir = tempfile::tempdir().unwrap();
        let folder = read_image_file(dir.path()).unwrap_err();
        assert_eq!(
            (folder.kind, folder.reason.as_str()),
            (ProblemKind::UnreadableFile, "not a regular file (a folder)")
        );
        let fifo = dir.path().join("pipe.jpg");
        if make_fifo(&fifo).is_some() {
            // Opening it would block this test forever.
            let problem = read_image_file(&fifo).unwrap_err();
            assert_eq!(problem.reason, "not a regular file (a FIFO)");
            assert!(problem.location.ends_with("pipe.jpg"), "{problem}");
            let err = read_text_file(&fifo).unwrap_err().to_string();
            assert!(err.contains("pipe.jpg: not a regular file (a FIFO)"), "{err}");
        }
        #[cfg(unix)]
        for device in ["/dev/zero", "/dev/urandom"] {
            if Path::new(device).exists() {
                assert_eq!(
                    read_image_file(Path::new(device)).unwrap_err().reason,
                    "not a regular file (a character device)"
                );
            }
        }
        assert_eq!(read_image_file(&dir.path().join("gone.jpg")).unwrap_err().kind, ProblemKind::MissingFile);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_followed_to_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.jpg");
        std::fs::write(&target, b"bytes").unwrap();
        let link = dir.path().join("link.jpg");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_image_file(&link).unwrap(), b"bytes");
        let to_folder = dir.path().join("folder.jpg");
        std::os::unix::fs::symlink(dir.path(), &to_folder).unwrap();
        assert_eq!(read_image_file(&to_folder).unwrap_err().reason, "not a regular file (a folder)");
    }

    #[test]
    fn a_file_over_its_ceiling_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.txt");
        // Sparse: the length is set without writing 64 MiB.
        File::create(&big).unwrap().set_len(MAX_TEXT_FILE_BYTES + 1).unwrap();
        let err = read_text_file(&big).unwrap_err().to_string();
        assert!(err.contains("big.txt") && err.contains("more than the MAX_TEXT_FILE_BYTES ceiling (64 MiB)"), "{err}");
        let image = dir.path().join("big.png");
        File::create(&image).unwrap().set_len(crate::MAX_IMAGE_FILE_BYTES + 1).unwrap();
        let problem = read_image_file(&image).unwrap_err();
        assert_eq!(problem.kind, ProblemKind::UnreadableFile);
        assert!(problem.reason.contains("MAX_IMAGE_FILE_BYTES ceiling (128 MiB)"), "{problem}");
    }

    #[test]
    fn bad_utf8_is_named_by_line_and_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.txt");
        std::fs::write(&path, b"cat\ndog\nb\xffd\n").unwrap();
        let err = read_text_file(&path).unwrap_err().to_string();
        assert!(err.contains("names.txt") && err.contains("line 3") && err.contains("byte offset 9"), "{err}");
        std::fs::write(&path, "caf\u{e9}\n").unwrap();
        assert_eq!(read_text_file(&path).unwrap(), "caf\u{e9}\n");
    }
}
