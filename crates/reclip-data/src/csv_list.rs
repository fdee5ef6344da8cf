//! Image–caption lists in CSV/TSV files, with open_clip's conventions: a
//! header row naming the columns, the image path under `filepath` and the
//! caption under `title`, tab-separated by default. Relative image paths are
//! taken from the list file's folder.

use crate::decode::decode_view;
use crate::files::read_file;
use crate::{DataReport, Dataset, Error, Problem, ProblemKind, Result, Sample, View};
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
    /// a blank caption are skipped and reported; a missing column or a list
    /// without one usable row is an error. Image files are read when loaded.
    pub fn open(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Self> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let folder = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(options.separator)
            .has_headers(true)
            .from_path(path)
            .map_err(|e| Error::format(path, e.to_string()))?;
        let headers = reader.headers().map_err(|e| Error::format(path, format!("cannot read the header row: {e}")))?;
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
        for record in reader.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(String::from("?"), |p| p.line().to_string());
                    let fatal = matches!(e.kind(), csv::ErrorKind::Io(_));
                    report.record(Problem::new(ProblemKind::MalformedRow, format!("{source}:{line}"), e.to_string()));
                    if fatal {
                        break;
                    }
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            let location = format!("{source}:{line}");
            let image = record.get(image_col).unwrap_or("");
            let caption = record.get(caption_col).unwrap_or("");
            if image.trim().is_empty() {
                report.record(Problem::new(ProblemKind::MalformedRow, location, "no image path"));
            } else if caption.trim().is_empty() {
                report.record(Problem::new(ProblemKind::BadCaption, location, "empty caption"));
            } else {
                rows.push(Row { image: folder.join(image), caption: caption.to_string() });
            }
        }
        if rows.is_empty() {
            return Err(Error::NoUsableSample { dataset: source, report: Box::new(report) });
        }
        Ok(CsvDataset { source, rows, report })
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
        let bytes = read_file(&row.image)?;
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
}
