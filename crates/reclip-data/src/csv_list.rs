//! Image–caption lists in CSV/TSV files, with open_clip's conventions: a
//! header row naming the columns, the image path under `filepath` and the
//! caption under `title`, tab-separated by default. Relative image paths are
//! taken from the list file's folder.
//!
//! Fields are split as open_clip's `pandas.read_csv(path, sep=sep)` splits
//! them with its defaults (`quotechar='"'`, `doublequote=True`, no
//! `escapechar`, blank lines skipped): a field that starts with `"` is quoted
//! and may hold separators, line breaks and `""` for a quote; a `"` inside an
//! unquoted field is an ordinary character. The csv crate's reader is set to
//! exactly that. Unlike pandas, a record that runs over several lines is not
//! kept: in a caption list it is almost always a caption starting with an
//! unmatched `"` that swallowed the rows after it, so it is reported with the
//! lines it covers and skipped. The list file may be at most
//! [`MAX_LIST_BYTES`](crate::MAX_LIST_BYTES) and each caption at most
//! [`MAX_CAPTION_BYTES`](crate::MAX_CAPTION_BYTES).

use crate::decode::decode_view;
use crate::files::{grew, open_bounded};
use crate::limits::{CAPTION, LIST_FILE};
use crate::line_count::{LineCounter, line_breaks};
use crate::{DataReport, Dataset, Error, Problem, ProblemKind, Result, Sample, View, read_image_file};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    pub separator: u8,
    pub image_key: String,
    pub caption_key: String,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { separator: b'\t', image_key: "filepath".into(), caption_key: "title".into() }
    }
}

/// Parses a separator option: one ASCII character, or `\t` / `tab` for a tab.
pub fn parse_separator(text: &str) -> Result<u8> {
    match text {
        "\\t" | "tab" => Ok(b'\t'),
        s if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        s => Err(Error::option("separator", format!("{s:?} is not a single ASCII character"))),
    }
}

#[derive(Debug)]
struct Row {
    image: PathBuf,
    caption: String,
}

pub struct CsvDataset {
    source: String,
    rows: Vec<Row>,
    report: DataReport,
}

impl CsvDataset {
    /// Reads the list. Malformed rows, rows without an image path and rows with
    /// a blank or oversized caption are skipped and reported; a list that is
    /// not a regular file, is over its ceiling, lacks a column or has no
    /// usable row is an error. Image files are read when loaded.
    pub fn open(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Self> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let folder = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let (file, len) = open_bounded(path, LIST_FILE, "a list file").map_err(|e| e.into_error(path))?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(options.separator)
            .has_headers(true)
            .quote(b'"')
            .quoting(true)
            .double_quote(true)
            .escape(None)
            // Field counts are checked below, so that a merged record is reported as one.
            .flexible(true)
            .from_reader(LineCounter::new(file));
        let headers =
            reader.headers().map_err(|e| Error::format(path, format!("cannot read the header row: {e}")))?.clone();
        let column = |key: &str| {
            headers.iter().position(|h| h == key).ok_or_else(|| {
                let found: Vec<&str> = headers.iter().collect();
                Error::format(
                    path,
                    format!(
                        "no column {key:?} in the header row (found {found:?}; separator {:?})",
                        options.separator as char
                    ),
                )
            })
        };
        let (image_col, caption_col) = (column(&options.image_key)?, column(&options.caption_key)?);

        let mut report = DataReport::new(&source);
        let mut rows = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let end = reader.position().byte();
                    let line = reader.get_mut().line_of(end.saturating_sub(1));
                    let fatal = matches!(e.kind(), csv::ErrorKind::Io(_));
                    report.record(Problem::new(ProblemKind::MalformedRow, format!("{source}:{line}"), e.to_string()));
                    if fatal {
                        break;
                    }
                    continue;
                }
            }
            let end = reader.position().byte();
            let last = reader.get_mut().line_of(end.saturating_sub(1));
            let lines = Lines::of(&record, last, end >= len);
            let location = format!("{source}:{}", lines.first);
            if let Some(reason) = lines.merged() {
                report.record(Problem::new(ProblemKind::MalformedRow, format!("{source}:{}", lines.range()), reason));
                continue;
            }
            let image = record.get(image_col).unwrap_or("");
            let caption = record.get(caption_col).unwrap_or("");
            if record.len() != headers.len() {
                let reason = format!("{} fields where the header row has {}", record.len(), headers.len());
                report.record(Problem::new(ProblemKind::MalformedRow, location, reason));
            } else if image.trim().is_empty() {
                report.record(Problem::new(ProblemKind::MalformedRow, location, "no image path"));
            } else if caption.trim().is_empty() {
                report.record(Problem::new(ProblemKind::BadCaption, location, "empty caption"));
            } else if caption.len() as u64 > CAPTION.bytes {
                report.record(Problem::new(
                    ProblemKind::BadCaption,
                    location,
                    CAPTION.refuse("a caption", caption.len() as u64),
                ));
            } else {
                rows.push(Row { image: folder.join(image), caption: caption.to_string() });
            }
        }
        if reader.into_inner().into_inner().limit() == 0 {
            return Err(Error::format(path, grew(LIST_FILE, "a list file")));
        }
        if rows.is_empty() {
            return Err(Error::no_usable_sample(source, "no rows after the header row", report));
        }
        Ok(CsvDataset { source, rows, report })
    }
}

/// The lines of the file one record covers.
#[derive(Debug, PartialEq, Eq)]
struct Lines {
    first: u64,
    last: u64,
    /// A quoted field ran to the end of the file, taking its final line break.
    quote_at_end: bool,
}

impl Lines {
    /// `last` is the line of the record's last byte (its line break, if it
    /// has one); `at_end` says the record ended at the end of the file.
    fn of(record: &csv::StringRecord, last: u64, at_end: bool) -> Self {
        let breaks = record.iter().map(line_breaks).sum::<u64>();
        let quote_at_end = at_end && record.iter().next_back().is_some_and(|f| f.ends_with(['\n', '\r']));
        // Line breaks inside the record join lines; a quote that ran to the
        // end swallowed the file's final line break, which joins nothing.
        let joins = if quote_at_end { breaks - 1 } else { breaks };
        Lines { first: last.saturating_sub(joins).max(1), last, quote_at_end }
    }

    fn range(&self) -> String {
        if self.first == self.last { self.first.to_string() } else { format!("{}-{}", self.first, self.last) }
    }

    /// Why the record is not kept, if a quoted field made it run over lines.
    fn merged(&self) -> Option<String> {
        let (first, last, count) = (self.first, self.last, self.last - self.first + 1);
        if self.quote_at_end {
            let joined =
                if count > 1 { format!(": lines {first}-{last} ({count}) read as one row") } else { String::new() };
            Some(format!("an unmatched '\"' on line {first} runs to the end of the file{joined}"))
        } else if count > 1 {
            Some(format!(
                "a quoted field runs over lines {first}-{last} (an unmatched '\"'?): {count} lines read as one row"
            ))
        } else {
            None
        }
    }
}

impl Dataset for CsvDataset {
    fn source(&self) -> &str {
        &self.source
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn load(&self, index: usize, view: &View) -> std::result::Result<Sample, Problem> {
        let row = &self.rows[index];
        let bytes = read_image_file(&row.image)?;
        let image = decode_view(&bytes, view)
            .map_err(|reason| Problem::new(ProblemKind::BadImage, row.image.display().to_string(), reason))?;
        Ok(Sample { image, caption: row.caption.clone() })
    }

    fn open_report(&self) -> &DataReport {
        &self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_parse() {
        assert_eq!(parse_separator("\\t").unwrap(), b'\t');
        assert_eq!(parse_separator("tab").unwrap(), b'\t');
        assert_eq!(parse_separator(",").unwrap(), b',');
        assert!(parse_separator(";;").unwrap_err().to_string().contains("separator"));
    }

    fn list(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("list.tsv");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn rows(n: usize, bad: usize, caption: &str) -> String {
        let mut text = String::from("filepath\ttitle\n");
        for i in 1..=n {
            let c = if i == bad { caption.to_string() } else { format!("caption {i}") };
            text += &format!("{i}.jpg\t{c}\n");
        }
        text
    }

    fn malformed(report: &DataReport) -> Vec<&Problem> {
        report.examples().iter().filter(|p| p.kind == ProblemKind::MalformedRow).collect()
    }

    #[test]
    fn an_unmatched_quote_running_to_the_end_is_reported_with_every_line_it_swallowed() {
        let dir = tempfile::tempdir().unwrap();
        // Row 3 (line 4, after the header) opens a quote that nothing closes.
        let path = list(dir.path(), &rows(8, 3, "\"a quote that never ends"));
        let dataset = CsvDataset::open(&path, &CsvOptions::default()).unwrap();
        assert_eq!(dataset.len(), 2);
        let report = dataset.open_report();
        let bad = malformed(report);
        assert_eq!(bad.len(), 1, "{report}");
        assert!(bad[0].location.ends_with("list.tsv:4-9"), "{}", bad[0]);
        assert_eq!(
            bad[0].reason,
            "an unmatched '\"' on line 4 runs to the end of the file: lines 4-9 (6) read as one row"
        );
        // Nothing lost silently: usable rows and the reported lines account for all 8.
        assert_eq!(dataset.len() + 6, 8);
    }

    #[test]
    fn a_quote_closed_rows_later_is_reported_as_one_record_over_those_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = rows(8, 3, "\"opens here");
        text = text.replace("6.jpg\tcaption 6", "6.jpg\tsays \"hi\" and closes");
        let path = list(dir.path(), &text);
        let dataset = CsvDataset::open(&path, &CsvOptions::default()).unwrap();
        let report = dataset.open_report();
        let bad = malformed(report);
        assert_eq!(bad.len(), 1, "{report}");
        assert!(bad[0].location.ends_with("list.tsv:4-7"), "{}", bad[0]);
        assert_eq!(bad[0].reason, "a quoted field runs over lines 4-7 (an unmatched '\"'?): 4 lines read as one row");
        assert_eq!(dataset.len() + 4, 8, "rows 1, 2, 7 and 8 are kept");
        assert_eq!(dataset.rows.last().unwrap().caption, "caption 8");
    }

    #[test]
    fn an_unmatched_quote_on_the_last_line_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = CsvDataset::open(list(dir.path(), &rows(3, 3, "\"unclosed")), &CsvOptions::default()).unwrap();
        let bad = malformed(dataset.open_report());
        assert_eq!(bad.len(), 1);
        assert!(bad[0].location.ends_with("list.tsv:4"), "{}", bad[0]);
        assert_eq!(bad[0].reason, "an unmatched '\"' on line 4 runs to the end of the file");
    }

    #[test]
    fn quoting_follows_pandas_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let text = "filepath\ttitle\n\
            a.jpg\tthe \"best\" pizza\n\
            b.jpg\t\"tab\there, \"\"quoted\"\"\"\n\
            \n\
            c.jpg\t\"closed\" then more\n\
            d.jpg\tno newline at the end";
        let dataset = CsvDataset::open(list(dir.path(), text), &CsvOptions::default()).unwrap();
        assert!(dataset.open_report().is_clean(), "{}", dataset.open_report());
        let captions: Vec<&str> = dataset.rows.iter().map(|r| r.caption.as_str()).collect();
        assert_eq!(
            captions,
            ["the \"best\" pizza", "tab\there, \"quoted\"", "closed then more", "no newline at the end"]
        );
    }

    #[test]
    fn line_numbers_count_blank_lines_and_merged_records() {
        let dir = tempfile::tempdir().unwrap();
        let text = "filepath\ttitle\n\na.jpg\t\n\"x\ny\"\tz\nb.jpg\t\t\n";
        let dataset = CsvDataset::open(list(dir.path(), text), &CsvOptions::default());
        let Err(Error::NoUsableSample { report, .. }) = dataset else { panic!("every row is bad") };
        let locations: Vec<&str> = report.examples().iter().map(|p| p.location.rsplit(':').next().unwrap()).collect();
        assert_eq!(locations, ["3", "4-5", "6"], "{report}");

        // The same with Windows and with old Mac line breaks.
        for breaks in ["\r\n", "\r"] {
            let dataset = CsvDataset::open(list(dir.path(), &text.replace('\n', breaks)), &CsvOptions::default());
            let Err(Error::NoUsableSample { report, .. }) = dataset else { panic!("every row is bad") };
            let locations: Vec<&str> =
                report.examples().iter().map(|p| p.location.rsplit(':').next().unwrap()).collect();
            assert_eq!(locations, ["3", "4-5", "6"], "{breaks:?}: {report}");
        }
    }

    #[test]
    fn a_row_that_is_not_utf8_is_reported_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.tsv");
        std::fs::write(&path, b"filepath\ttitle\r\n\r\na.jpg\tok\r\nb.jpg\tb\xffd\r\nc.jpg\tok\r\n").unwrap();
        let dataset = CsvDataset::open(&path, &CsvOptions::default()).unwrap();
        assert_eq!(dataset.len(), 2);
        let bad = malformed(dataset.open_report());
        assert_eq!(bad.len(), 1);
        assert!(bad[0].location.ends_with("list.tsv:4") && bad[0].reason.contains("UTF-8"), "{}", bad[0]);
    }

    #[test]
    fn a_caption_over_the_ceiling_is_a_bad_caption() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(crate::MAX_CAPTION_BYTES as usize + 1);
        let dataset = CsvDataset::open(list(dir.path(), &rows(2, 2, &long)), &CsvOptions::default()).unwrap();
        let report = dataset.open_report();
        assert_eq!((dataset.len(), report.count(ProblemKind::BadCaption)), (1, 1), "{report}");
        assert!(report.examples()[0].reason.contains("more than the MAX_CAPTION_BYTES ceiling (1 MiB)"), "{report}");
    }

    #[test]
    fn a_list_that_is_not_a_regular_file_or_too_big_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = CsvDataset::open(dir.path(), &CsvOptions::default()).err().unwrap().to_string();
        assert!(err.ends_with(": not a regular file (a folder)"), "{err}");
        let fifo = dir.path().join("list.fifo");
        if crate::files::make_fifo(&fifo).is_some() {
            let err = CsvDataset::open(&fifo, &CsvOptions::default()).err().unwrap().to_string();
            assert!(err.contains("list.fifo: not a regular file (a FIFO)"), "{err}");
        }
        let big = dir.path().join("big.tsv");
        std::fs::File::create(&big).unwrap().set_len(crate::MAX_LIST_BYTES + 1).unwrap();
        let err = CsvDataset::open(&big, &CsvOptions::default()).err().unwrap().to_string();
        assert!(err.contains("big.tsv") && err.contains("MAX_LIST_BYTES ceiling (4 GiB)"), "{err}");
    }

    #[test]
    fn a_list_with_only_a_header_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = CsvDataset::open(list(dir.path(), "filepath\ttitle\n"), &CsvOptions::default()).err().unwrap();
        assert!(err.to_string().ends_with("list.tsv: no rows after the header row"), "{err}");
    }
}
