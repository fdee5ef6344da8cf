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
//! reported.

use crate::decode::decode_view;
use crate::files::io_problem;
use crate::shards::expand_shard_list;
use crate::{DataReport, Dataset, Error, Problem, ProblemKind, Result, Sample, View};
use std::fs::File;
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
            return Err(Error::NoUsableSample { dataset: shard_list.to_string(), report: Box::new(report) });
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
            read_at(shard, s.caption.offset, s.caption.len).map_err(|e| io_problem(self.location(index), &e))?;
        let caption =
            String::from_utf8(caption).map_err(|_| problem(ProblemKind::BadCaption, "caption is not UTF-8".into()))?;
        if caption.trim().is_empty() {
            return Err(problem(ProblemKind::BadCaption, "empty caption".into()));
        }
        let bytes = read_at(shard, s.image.offset, s.image.len).map_err(|e| io_problem(self.location(index), &e))?;
        let image = decode_view(&bytes, view).map_err(|reason| problem(ProblemKind::BadImage, reason))?;
        Ok(Sample { image, caption: caption.trim().to_string() })
    }

    fn open_report(&self) -> &DataReport {
        &self.report
    }
}

fn read_at(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
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
    let reason = match (p.image, p.caption) {
        (Some(image), Some(caption)) => return samples.push(TarSample { shard, image, caption }),
        _ if cut => "cut off where the shard breaks",
        (None, _) => "no .jpg, .jpeg or .png member",
        (Some(_), None) => "no .txt member",
    };
    report.record(Problem::new(ProblemKind::IncompleteSample, format!("{}:{}", path.display(), p.key), reason));
}

fn index_shard(shard: u32, path: &Path, samples: &mut Vec<TarSample>, report: &mut DataReport) {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return report.record(io_problem(path.display().to_string(), &e)),
    };
    let file_len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return report.record(io_problem(path.display().to_string(), &e)),
    };
    let mut archive = tar::Archive::new(file);
    let entries = match archive.entries_with_seek() {
        Ok(entries) => entries,
        Err(e) => return report.record(io_problem(path.display().to_string(), &e)),
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
    use super::split_key;

    #[test]
    fn keys_end_at_the_first_dot_of_the_file_name() {
        assert_eq!(split_key("a/b.c/000123.jpg"), ("a/b.c/000123", Some("jpg")));
        assert_eq!(split_key("x.seg.txt"), ("x", Some("seg.txt")));
        assert_eq!(split_key("dir/noext"), ("dir/noext", None));
    }
}
