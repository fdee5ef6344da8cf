//! WebDataset tar shards: a sample is the group of consecutive members that
//! share a key (the member path up to the first '.' of its file name); its
//! image is the `.jpg`, `.jpeg` or `.png` member and its caption the `.txt`.
//!
//! Opening a dataset reads each shard's headers in order, seeking past the
//! member data, and keeps only where each image and caption lies. Loading a
//! sample reads those bytes straight from the shard: nothing is unpacked to
//! disk, and any sample can be read in any order, which the per-epoch
//! shuffle needs. A shard that ends early or has a corrupt header keeps the
//! complete samples before the break; the break and the cut-off sample are
//! reported. Shards must be regular files; an image member over
//! [`MAX_IMAGE_FILE_BYTES`](crate::MAX_IMAGE_FILE_BYTES) or a caption over
//! [`MAX_CAPTION_BYTES`](crate::MAX_CAPTION_BYTES) is reported when the
//! shard is indexed, and never read.

use crate::decode::decode_view;
use crate::files::{FileError, open_regular};
use crate::shards::expand_shard_list;
use crate::tar_walk::{BLOCK, Member, Walked, split_key, walk_shard};
use crate::{DataReport, Dataset, Error, Problem, ProblemKind, Result, Sample, View};
use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

#[derive(Debug)]
struct TarSample {
    shard: u32,
    image: Member,
    caption: Member,
}

pub struct WebDataset {
    source: String,
    shards: Vec<PathBuf>,
    samples: Vec<TarSample>,
    report: DataReport,
}

impl WebDataset {
    /// Indexes the shards a shard list names (see [`expand_shard_list`]).
    /// Missing or broken shards are reported; no complete sample at all is an error.
    pub fn open(shard_list: &str) -> Result<Self> {
        let shards: Vec<PathBuf> = expand_shard_list(shard_list)?.into_iter().map(PathBuf::from).collect();
        let mut report = DataReport::new(shard_list);
        let mut samples = Vec::new();
        for (id, path) in shards.iter().enumerate() {
            index_shard(id as u32, path, &mut samples, &mut report);
        }
        if samples.is_empty() {
            let found = format!("its {} shard(s) hold no samples", shards.len());
            return Err(Error::no_usable_sample(shard_list, found, report));
        }
        Ok(WebDataset { source: shard_list.to_string(), shards, samples, report })
    }

    /// `shard:key` of sample `index`, for reports; the key is read back from
    /// the image member's header, which sits just before its data.
    fn location(&self, index: usize) -> String {
        let s = &self.samples[index];
        let shard = &self.shards[s.shard as usize];
        let key = read_at(shard, s.image.offset - BLOCK, BLOCK).ok().and_then(|bytes| {
            let mut header = tar::Header::new_old();
            header.as_mut_bytes().copy_from_slice(&bytes);
            header.path().ok().map(|p| split_key(&p.to_string_lossy()).0.to_string())
        });
        format!("{}:{}", shard.display(), key.unwrap_or_else(|| format!("member at byte {}", s.image.offset)))
    }
}

impl Dataset for WebDataset {
    fn source(&self) -> &str {
        &self.source
    }

    fn len(&self) -> usize {
        self.samples.len()
    }

    fn load(&self, index: usize, view: &View) -> std::result::Result<Sample, Problem> {
        let s = &self.samples[index];
        let shard = &self.shards[s.shard as usize];
        let location = || self.location(index);
        let caption = read_at(shard, s.caption.offset, s.caption.len).map_err(|e| e.into_problem(location()))?;
        let image = read_at(shard, s.image.offset, s.image.len).map_err(|e| e.into_problem(location()))?;
        decode_sample(&image, caption, view, location)
    }

    fn open_report(&self) -> &DataReport {
        &self.report
    }
}

/// How many complete samples the shard at `path` holds; its problems go to `report`.
pub fn count_shard_samples(path: &Path, report: &mut DataReport) -> usize {
    let mut samples = Vec::new();
    index_shard(0, path, &mut samples, report);
    samples.len()
}

/// A shard sample from its members' bytes: the caption must be UTF-8 and
/// not blank, the image must decode; `location` names it in a problem.
pub(crate) fn decode_sample(
    image: &[u8],
    caption: Vec<u8>,
    view: &View,
    location: impl Fn() -> String,
) -> std::result::Result<Sample, Problem> {
    let problem = |kind, reason: String| Problem::new(kind, location(), reason);
    let caption =
        String::from_utf8(caption).map_err(|_| problem(ProblemKind::BadCaption, "caption is not UTF-8".into()))?;
    if caption.trim().is_empty() {
        return Err(problem(ProblemKind::BadCaption, "empty caption".into()));
    }
    let image = decode_view(image, view).map_err(|reason| problem(ProblemKind::BadImage, reason))?;
    Ok(Sample { image, caption: caption.trim().to_string() })
}

/// The `len` bytes at `offset` (a length the index checked against its ceiling).
pub(crate) fn read_at(path: &Path, offset: u64, len: u64) -> std::result::Result<Vec<u8>, FileError> {
    let mut file = open_regular(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = vec![0; len as usize];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn index_shard(shard: u32, path: &Path, samples: &mut Vec<TarSample>, report: &mut DataReport) {
    let _ = walk_shard(path, 0, false, |walked| {
        match walked {
            Walked::Sample(s) => samples.push(TarSample { shard, image: s.image, caption: s.caption }),
            Walked::Problem(problem) => report.record(problem),
        }
        ControlFlow::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_CAPTION_BYTES, MAX_IMAGE_FILE_BYTES};
    use std::io::Write;

    /// Appends a member header for `len` bytes of data at the end of `file`,
    /// then the data: `data`, or a hole of zeros (sparse, so cheap) if `None`.
    fn append(file: &mut std::fs::File, name: &str, len: u64, data: Option<&[u8]>) {
        let mut header = tar::Header::new_gnu();
        header.set_path(name).unwrap();
        header.set_size(len);
        header.set_mode(0o644);
        header.set_cksum();
        let start = file.seek(SeekFrom::End(0)).unwrap();
        file.write_all(header.as_bytes()).unwrap();
        match data {
            Some(bytes) => file.write_all(bytes).unwrap(),
            None => file.set_len(start + BLOCK + len).unwrap(),
        }
        file.set_len((start + BLOCK + len).div_ceil(BLOCK) * BLOCK).unwrap();
    }

    fn finish_archive(file: &mut std::fs::File) {
        let end = file.seek(SeekFrom::End(0)).unwrap();
        file.set_len(end + 2 * BLOCK).unwrap();
    }

    #[test]
    fn members_over_their_ceilings_are_reported_and_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.tar");
        let mut file = std::fs::File::create(&path).unwrap();
        append(&mut file, "huge.jpg", MAX_IMAGE_FILE_BYTES + 1, None);
        append(&mut file, "huge.txt", 5, Some(b"a cat"));
        append(&mut file, "long.jpg", 3, Some(b"\xff\xd8\xff"));
        append(&mut file, "long.txt", MAX_CAPTION_BYTES + 1, None);
        append(&mut file, "ok.jpg", 3, Some(b"\xff\xd8\xff"));
        append(&mut file, "ok.txt", 2, Some(b"ok"));
        finish_archive(&mut file);
        let dataset = WebDataset::open(path.to_str().unwrap()).unwrap();
        assert_eq!(dataset.len(), 1);
        let report = dataset.open_report();
        assert_eq!((report.count(ProblemKind::UnreadableFile), report.count(ProblemKind::BadCaption)), (1, 1));
        let text = report.to_string();
        assert!(
            text.contains(
                "big.tar:huge: an image member of 134217729 bytes, more than the MAX_IMAGE_FILE_BYTES ceiling (128 MiB)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "big.tar:long: a caption member of 1048577 bytes, more than the MAX_CAPTION_BYTES ceiling (1 MiB)"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_shard_that_is_not_a_regular_file_is_reported_without_opening_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("0.tar");
        let mut file = std::fs::File::create(&good).unwrap();
        append(&mut file, "a.jpg", 3, Some(b"\xff\xd8\xff"));
        append(&mut file, "a.txt", 1, Some(b"a"));
        finish_archive(&mut file);
        std::fs::create_dir(dir.path().join("1.tar")).unwrap();
        let fifo = crate::files::make_fifo(&dir.path().join("2.tar")).is_some();
        let list = format!("{}/{{0..{}}}.tar", dir.path().display(), if fifo { 2 } else { 1 });
        let dataset = WebDataset::open(&list).unwrap();
        assert_eq!(dataset.len(), 1);
        let report = dataset.open_report();
        assert_eq!(report.count(ProblemKind::UnreadableFile), 1 + fifo as usize, "{report}");
        assert!(report.to_string().contains("1.tar: not a regular file (a folder)"), "{report}");
        if fifo {
            assert!(report.to_string().contains("2.tar: not a regular file (a FIFO)"), "{report}");
        }
    }

    #[test]
    fn shards_without_members_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.tar");
        finish_archive(&mut std::fs::File::create(&path).unwrap());
        let err = WebDataset::open(path.to_str().unwrap()).err().unwrap().to_string();
        assert!(err.ends_with("empty.tar: its 1 shard(s) hold no samples"), "{err}");
    }
}
