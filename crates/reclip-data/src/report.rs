//! Bad data is skipped, never silently lost: every skipped sample, row or
//! shard is counted here by kind, with the first few locations and reasons,
//! so that a training run can say at its end what it did not see.

use std::collections::BTreeMap;
use std::fmt;

/// How many problems of each kind keep their location and reason.
pub const EXAMPLES_PER_KIND: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// An image file (or shard) that does not exist.
    MissingFile,
    /// A file that exists but is not read: permissions, an I/O error, not a
    /// regular file (a folder, a FIFO, a device), over its size ceiling, or a
    /// folder that ImageFolder does not walk (a link loop, too deep).
    UnreadableFile,
    /// An image that is corrupt, truncated, neither JPEG nor PNG, or declares
    /// more than [`MAX_IMAGE_PIXELS`](crate::MAX_IMAGE_PIXELS) pixels.
    BadImage,
    /// A caption that is empty, blank, not UTF-8, or longer than
    /// [`MAX_CAPTION_BYTES`](crate::MAX_CAPTION_BYTES).
    BadCaption,
    /// A CSV/TSV row with the wrong number of fields, no image path, bad
    /// encoding, or a quoted field running over several lines.
    MalformedRow,
    /// A tar sample without an image or without a caption member.
    IncompleteSample,
    /// A tar shard that is truncated or corrupt; its samples before the break are kept.
    BrokenShard,
}

impl ProblemKind {
    pub fn describe(self) -> &'static str {
        match self {
            ProblemKind::MissingFile => "missing file",
            ProblemKind::UnreadableFile => "unreadable file",
            ProblemKind::BadImage => "corrupt, truncated or unsupported image",
            ProblemKind::BadCaption => "empty, non-UTF-8 or oversized caption",
            ProblemKind::MalformedRow => "malformed row",
            ProblemKind::IncompleteSample => "incomplete sample",
            ProblemKind::BrokenShard => "truncated or corrupt shard",
        }
    }
}

/// One skipped item: where it is (a path, `file:line`, or `shard:key`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub location: String,
    pub reason: String,
}

impl Problem {
    pub fn new(kind: ProblemKind, location: impl Into<String>, reason: impl Into<String>) -> Self {
        Problem { kind, location: location.into(), reason: reason.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}

/// The problems found in one data source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataReport {
    source: String,
    counts: BTreeMap<ProblemKind, usize>,
    examples: Vec<Problem>,
}

impl DataReport {
    pub fn new(source: impl Into<String>) -> Self {
        DataReport { source: source.into(), ..Default::default() }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn record(&mut self, problem: Problem) {
        let count = self.counts.entry(problem.kind).or_default();
        *count += 1;
        if *count <= EXAMPLES_PER_KIND {
            self.examples.push(problem);
        }
    }

    /// Adds another report's counts and examples (examples beyond the per-kind limit are dropped).
    pub fn merge(&mut self, other: &DataReport) {
        for (&kind, &n) in &other.counts {
            let kept = self.counts.get(&kind).copied().unwrap_or(0);
            let room = EXAMPLES_PER_KIND.saturating_sub(kept);
            self.examples.extend(other.examples.iter().filter(|p| p.kind == kind).take(room).cloned());
            *self.counts.entry(kind).or_default() += n;
        }
    }

    pub fn count(&self, kind: ProblemKind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    pub fn is_clean(&self) -> bool {
        self.counts.is_empty()
    }

    /// The first few problems of each kind, in the order they were found.
    pub fn examples(&self) -> &[Problem] {
        &self.examples
    }

    /// The report on one line: the count of each kind with its first example.
    pub fn summary(&self) -> String {
        let kinds: Vec<String> = self
            .counts
            .iter()
            .map(|(&kind, &n)| match self.examples.iter().find(|p| p.kind == kind) {
                Some(first) => format!("{}: {n}, first {first}", kind.describe()),
                None => format!("{}: {n}", kind.describe()),
            })
            .collect();
        format!("{} problem(s) — {}", self.total(), kinds.join("; "))
    }
}

impl fmt::Display for DataReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return write!(f, "{}: no data problems", self.source);
        }
        write!(f, "{}: {} problem(s), skipped", self.source, self.total())?;
        for (&kind, &n) in &self.counts {
            write!(f, "\n  {}: {n}", kind.describe())?;
            for p in self.examples.iter().filter(|p| p.kind == kind) {
                write!(f, "\n    {p}")?;
            }
            let shown = n.min(EXAMPLES_PER_KIND);
            if n > shown {
                write!(f, "\n    … and {} more", n - shown)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: ProblemKind, i: usize) -> Problem {
        Problem::new(kind, format!("file{i}"), "reason")
    }

    #[test]
    fn counts_everything_but_keeps_only_the_first_examples() {
        let mut r = DataReport::new("src");
        for i in 0..8 {
            r.record(problem(ProblemKind::BadImage, i));
        }
        r.record(problem(ProblemKind::MissingFile, 99));
        assert_eq!(r.count(ProblemKind::BadImage), 8);
        assert_eq!(r.total(), 9);
        assert_eq!(r.examples().len(), EXAMPLES_PER_KIND + 1);
        assert_eq!(r.examples()[0].location, "file0");
        let text = r.to_string();
        assert!(text.contains("missing file: 1"), "{text}");
        assert!(text.contains("and 3 more"), "{text}");
    }

    #[test]
    fn merge_adds_counts_and_respects_the_example_limit() {
        let mut a = DataReport::new("a");
        let mut b = DataReport::new("b");
        for i in 0..4 {
            a.record(problem(ProblemKind::BadCaption, i));
            b.record(problem(ProblemKind::BadCaption, 10 + i));
        }
        b.record(problem(ProblemKind::BrokenShard, 7));
        a.merge(&b);
        assert_eq!(a.count(ProblemKind::BadCaption), 8);
        assert_eq!(a.count(ProblemKind::BrokenShard), 1);
        let captions: Vec<_> = a.examples().iter().filter(|p| p.kind == ProblemKind::BadCaption).collect();
        assert_eq!(captions.len(), EXAMPLES_PER_KIND);
        assert_eq!(captions[4].location, "file10");
    }
}
