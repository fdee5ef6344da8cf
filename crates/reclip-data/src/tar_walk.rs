//! One walk through a WebDataset tar shard, shared by the random-access
//! index (which seeks past member data) and the streaming reader (which
//! reads it): members grouped into samples by key (the member path up to
//! the first '.' of its file name), a sample's image its `.jpg`, `.jpeg` or
//! `.png` member and its caption its `.txt`. Both readers thus keep the same
//! samples and report the same problems: a shard that ends early or has a
//! corrupt header keeps the complete samples before the break; the break,
//! the cut-off sample, members over their ceilings and samples missing a
//! member are reported.
//!
//! A walk may start at any sample boundary (the `end` of a sample it
//! handed out), which is how a stream resumes mid-shard.

use crate::files::{FileError, open_regular};
use crate::limits::{CAPTION, IMAGE_FILE};
use crate::{Problem, ProblemKind};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::Path;

pub(crate) const BLOCK: u64 = 512;
const IMAGE_SUFFIXES: [&str; 3] = ["jpg", "jpeg", "png"];
const CAPTION_SUFFIX: &str = "txt";
/// Sequential reads come in pieces this large when member data is read
/// (the stream's read-ahead), and this small when only headers are (the
/// index, which seeks past the data).
const DATA_READ_BUFFER: usize = 1 << 20;
const HEADER_READ_BUFFER: usize = 4 << 10;

/// Where a member's data lies in its shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub offset: u64,
    pub len: u64,
}

/// A complete sample, as a walk finds it.
pub(crate) struct WalkedSample {
    pub key: String,
    pub image: Member,
    pub caption: Member,
    /// The image's and the caption's bytes, when the walk reads data.
    pub data: Option<(Vec<u8>, Vec<u8>)>,
    /// Where the next sample's headers begin: past this sample's last member.
    pub end: u64,
}

/// What a walk hands out, in shard order.
pub(crate) enum Walked {
    Sample(WalkedSample),
    Problem(Problem),
}

/// Splits a member path into its sample key and suffix (`a/b.c.jpg` → `a/b`, `c.jpg`).
pub(crate) fn split_key(path: &str) -> (&str, Option<&str>) {
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
    image_data: Option<Vec<u8>>,
    caption_data: Option<Vec<u8>>,
    end: u64,
}

impl Pending {
    fn new(key: &str) -> Self {
        Pending { key: key.to_string(), image: None, caption: None, image_data: None, caption_data: None, end: 0 }
    }

    /// The complete sample, or the problem that keeps it out. `cut` says the
    /// shard broke off while this sample was being read.
    fn finish(self, cut: bool, path: &Path) -> Walked {
        let location = || format!("{}:{}", path.display(), self.key);
        let problem = |kind, reason: &str| Walked::Problem(Problem::new(kind, location(), reason));
        match (self.image, self.caption) {
            (Some(image), _) if image.len > IMAGE_FILE.bytes => {
                problem(ProblemKind::UnreadableFile, &IMAGE_FILE.refuse("an image member", image.len))
            }
            (_, Some(caption)) if caption.len > CAPTION.bytes => {
                problem(ProblemKind::BadCaption, &CAPTION.refuse("a caption member", caption.len))
            }
            (Some(image), Some(caption)) => {
                let data = self.image_data.zip(self.caption_data);
                Walked::Sample(WalkedSample { key: self.key, image, caption, data, end: self.end })
            }
            _ if cut => problem(ProblemKind::IncompleteSample, "cut off where the shard breaks"),
            (None, _) => problem(ProblemKind::IncompleteSample, "no .jpg, .jpeg or .png member"),
            (Some(_), None) => problem(ProblemKind::IncompleteSample, "no .txt member"),
        }
    }
}

/// A shard read from byte `start`, its positions counted from there: the
/// tar reader takes the position a seek returns for one within the archive.
/// Its skips past member data keep what is buffered (a plain seek would
/// drop the buffer and read it again for every member).
struct FromOffset {
    inner: BufReader<std::fs::File>,
    start: u64,
}

impl Read for FromOffset {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Seek for FromOffset {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        match pos {
            SeekFrom::Current(n) => self.inner.seek_relative(n)?,
            SeekFrom::Start(n) => drop(self.inner.seek(SeekFrom::Start(n + self.start))?),
            end => drop(self.inner.seek(end)?),
        }
        let at = self.inner.stream_position()?;
        at.checked_sub(self.start).ok_or_else(|| std::io::Error::other("a seek before the walk's start"))
    }
}

/// Makes `key` the pending sample's, handing out the one it ends.
fn each_new_key(
    pending: &mut Option<Pending>,
    key: &str,
    path: &Path,
    each: &mut impl FnMut(Walked) -> ControlFlow<()>,
) -> ControlFlow<()> {
    if pending.as_ref().is_none_or(|p| p.key != key)
        && let Some(done) = pending.replace(Pending::new(key))
    {
        return each(done.finish(false, path));
    }
    ControlFlow::Continue(())
}

/// Walks the shard at `path` from byte `start` (0, or a sample's `end`),
/// handing each sample and problem to `each` until the shard ends or `each`
/// breaks off. With `read_data`, image and caption bytes within their
/// ceilings are read; otherwise member data is skipped by seeking.
pub(crate) fn walk_shard(
    path: &Path,
    start: u64,
    read_data: bool,
    mut each: impl FnMut(Walked) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let problem = |e: FileError| Walked::Problem(e.into_problem(path.display().to_string()));
    let mut file = match open_regular(path) {
        Ok(f) => f,
        Err(e) => return each(problem(e)),
    };
    let file_len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return each(problem(e.into())),
    };
    if let Err(e) = file.seek(SeekFrom::Start(start)) {
        return each(problem(e.into()));
    }
    let capacity = if read_data { DATA_READ_BUFFER } else { HEADER_READ_BUFFER };
    let reader = FromOffset { inner: BufReader::with_capacity(capacity, file), start };
    let mut archive = tar::Archive::new(reader);
    let entries = match archive.entries_with_seek() {
        Ok(entries) => entries,
        Err(e) => return each(problem(e.into())),
    };
    let mut pending: Option<Pending> = None;
    let mut end = start;
    let mut broken = None;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                broken = Some(format!("unreadable tar header after byte {end}: {e}"));
                break;
            }
        };
        let member = Member { offset: start + entry.raw_file_position(), len: entry.size() };
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if member.offset + member.len > file_len {
            // Seeking past the end succeeds, so a cut-off member only shows here.
            broken = Some(format!(
                "truncated: member {name} needs {} bytes, the file has {file_len}",
                member.offset + member.len
            ));
            each_new_key(&mut pending, split_key(&name).0, path, &mut each)?;
            break;
        }
        end = member.offset + member.len.div_ceil(BLOCK) * BLOCK;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let (key, Some(suffix)) = split_key(&name) else { continue };
        each_new_key(&mut pending, key, path, &mut each)?;
        let p = pending.as_mut().expect("a pending sample was just ensured");
        p.end = end;
        let suffix = suffix.to_ascii_lowercase();
        let (slot, data, ceiling) = if IMAGE_SUFFIXES.contains(&suffix.as_str()) {
            (&mut p.image, &mut p.image_data, IMAGE_FILE.bytes)
        } else if suffix == CAPTION_SUFFIX {
            (&mut p.caption, &mut p.caption_data, CAPTION.bytes)
        } else {
            continue;
        };
        if slot.is_some() {
            continue;
        }
        *slot = Some(member);
        if read_data && member.len <= ceiling {
            let mut bytes = Vec::with_capacity(member.len as usize);
            if let Err(e) = entry.read_to_end(&mut bytes) {
                broken = Some(format!("unreadable member {name}: {e}"));
                break;
            }
            *data = Some(bytes);
        }
    }
    if let Some(p) = pending {
        each(p.finish(broken.is_some(), path))?;
    }
    // A complete archive ends with two zero blocks; without them the file was
    // cut at a member boundary and later samples are lost.
    if broken.is_none() && file_len < end + 2 * BLOCK {
        broken = Some(format!("truncated: no end-of-archive marker after byte {end}"));
    }
    match broken {
        Some(reason) => {
            each(Walked::Problem(Problem::new(ProblemKind::BrokenShard, path.display().to_string(), reason)))
        }
        None => ControlFlow::Continue(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_end_at_the_first_dot_of_the_file_name() {
        assert_eq!(split_key("a/b.c/000123.jpg"), ("a/b.c/000123", Some("jpg")));
        assert_eq!(split_key("x.seg.txt"), ("x", Some("seg.txt")));
        assert_eq!(split_key("dir/noext"), ("dir/noext", None));
    }
}
