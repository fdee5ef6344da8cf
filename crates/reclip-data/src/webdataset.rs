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
use crate::limits::{CAPTION, IMAGE_FILE};
use crate::shards::expand_shard_list;
use crate::{DataReport, Dataset, Error, Problem, ProblemKind, Result, Sample, View};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const BLOCK: u64 = 512;
const IMAGE_SUFFIXES: [&str; 3] = ["jpg", "jpeg", "png"];
const CAPTION_SUFFIX: &str = "txt";

/// Where a member's data lies in its shard.
#[derive(Clone, Copy, Debug)]
struct Member {
    offset: u64,
    len: u64,
}

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
        let problem = |kind, reason: String| Problem::new(kind, self.location(index), reason);
        let caption =
            read_at(shard, s.caption.offset, s.caption.len).map_err(|e| e.into_problem(self.location(index)))?;
        let caption =
            String::from_utf8(caption).map_err(|_| problem(ProblemKind::BadCaption, "caption is not UTF-8".into()))?;
        if caption.trim().is_empty() {
            return Err(problem(ProblemKind::BadCaption, "empty caption".into()));
        }
        let bytes = read_at(shard, s.image.offset, s.image.len).map_err(|e| e.into_problem(self.location(index)))?;
        let image = decode_view(&bytes, view).map_err(|reason| problem(ProblemKind::BadImage, reason))?;
        Ok(Sample { image, caption: caption.trim().to_string() })
    }

    fn open_report(&self) -> &DataReport {
        &self.report
    }
}

/// The `len` bytes at `offset` (a length the index checked against its ceiling).
fn read_at(path: &Path, offset: u64, len: u64) -> std::result::Result<Vec<u8>, FileError> {
    let mut file = open_regular(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = vec![0; len as usize];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Splits a member path into its sample key and suffix (`a/b.c.jpg` → `a/b`, `c.jpg`).
fn split_key(path: &str) -> (&str, Option<&str>) {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    match path[name_start..].find('.') {
        Some(dot) => (&path[..name_start + dot], Some(&path[name_start + dot + 1..])),
        None => (path, None),
    }
}

/// The members of the sample being read.
struct Pending {
    key: String,
    image: Option<Member>,
    caption: Option<Member>,
}

/// Keeps a complete sample, reports an incomplete one. `cut` says the shard
/// broke off while this sample was being read.
fn finish(
    pending: Option<Pending>,
    cut: bool,
    shard: u32,
    path: &Path,
    samples: &mut Vec<TarSample>,
    report: &mut DataReport,
) {
    let Some(p) = pending else { return };
    let location = || format!("{}:{}", path.display(), p.key);
    let reason = match (p.image, p.caption) {
        (Some(image), _) if image.len > IMAGE_FILE.bytes => {
            let reason = IMAGE_FILE.refuse("an image member", image.len);
            return report.record(Problem::new(ProblemKind::UnreadableFile, location(), reason));
        }
        (_, Some(caption)) if caption.len > CAPTION.bytes => {
            let reason = CAPTION.refuse("a caption member", caption.len);
            return report.record(Problem::new(ProblemKind::BadCaption, location(), reason));
        }
        (Some(image), Some(caption)) => return samples.push(TarSample { shard, image, caption }),
        _ if cut => "cut off where the shard breaks",
        (None, _) => "no .jpg, .jpeg or .png member",
        (Some(_), None) => "no .txt member",
    };
    report.record(Problem::new(ProblemKind::IncompleteSample, location(), reason));
}

fn index_shard(shard: u32, path: &Path, samples: &mut Vec<TarSample>, report: &mut DataReport) {
    let problem = |e: FileError| e.into_problem(path.display().to_string());
    let file = match open_regular(path) {
        Ok(f) => f,
        Err(e) => return report.record(problem(e)),
    };
    let file_len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return report.record(problem(e.into())),
    };
    let mut archive = tar::Archive::new(file);
    let entries = match archive.entries_with_seek() {
        Ok(entries) => entries,
        Err(e) => return report.record(problem(e.into())),
    };
    let mut pending: Option<Pending> = None;
    let mut end = 0;
    let mut broken = None;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                broken = Some(format!("unreadable tar header after byte {end}: {e}"));
                break;
            }
        };
        let member = Member { offset: entry.raw_file_position(), len: entry.size() };
        end = member.offset + member.len.div_ceil(BLOCK) * BLOCK;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if member.offset + member.len > file_len {
            // Seeking past the end succeeds, so a cut-off member only shows here.
            broken = Some(format!(
                "truncated: member {name} needs {} bytes, the file has {file_len}",
                member.offset + member.len
            ));
            let key = split_key(&name).0;
            if pending.as_ref().is_none_or(|p| p.key != key) {
                finish(pending.take(), false, shard, path, samples, report);
                pending = Some(Pending { key: key.to_string(), image: None, caption: None });
            }
            break;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let (key, Some(suffix)) = split_key(&name) else { continue };
        if pending.as_ref().is_none_or(|p| p.key != key) {
            finish(pending.take(), false, shard, path, samples, report);
            pending = Some(Pending { key: key.to_string(), image: None, caption: None });
        }
        let p = pending.as_mut().expect("a pending sample was just ensured");
        let suffix = suffix.to_ascii_lowercase();
        if IMAGE_SUFFIXES.contains(&suffix.as_str()) {
            p.image.get_or_insert(member);
        } else if suffix == CAPTION_SUFFIX {
            p.caption.get_or_insert(member);
        }
    }
    finish(pending, broken.is_some(), shard, path, samples, report);
    // A complete archive ends with two zero blocks; without them the file was
    // cut at a member boundary and later samples are lost.
    if broken.is_none() && file_len < end + 2 * BLOCK {
        broken = Some(format!("truncated: no end-of-archive marker after byte {end}"));
    }
    if let Some(reason) = broken {
        report.record(Problem::new(ProblemKind::BrokenShard, path.display().to_string(), reason));
    }
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

    #[test]
    fn keys_end_at_the_first_dot_of_the_file_name() {
        assert_eq!(split_key("a/b.c/000123.jpg"), ("a/b.c/000123", Some("jpg")));
        assert_eq!(split_key("x.seg.txt"), ("x", Some("seg.txt")));
        assert_eq!(split_key("dir/noext"), ("dir/noext", None));
    }
}
