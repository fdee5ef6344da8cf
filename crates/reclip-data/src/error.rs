use crate::DataReport;
use std::path::PathBuf;

/// Why a data source could not be opened or a batch could not be made.
/// Problems with single samples are not errors: they are skipped and counted
/// in a [`DataReport`]; only a source with nothing usable left is an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Not `source`: the message already holds the I/O error, and a chained
    // source would print it twice.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// Every sample of the source was bad; the report says why.
    #[error("no usable sample in {dataset}: {}", report.summary())]
    NoUsableSample { dataset: String, report: Box<DataReport> },
    /// The source holds no sample at all, and so nothing to report; `found`
    /// says what it does hold ("no rows after the header row").
    #[error("no usable sample in {dataset}: {found}")]
    EmptySource { dataset: String, found: String },
    #[error("invalid {option}: {msg}")]
    InvalidOption { option: &'static str, msg: String },
    #[error("the caption encoder returned {got} token ids for context length {expected}")]
    EncoderLength { got: usize, expected: usize },
    #[error("the data loader's prefetch thread stopped: {0}")]
    LoaderStopped(String),
    #[error(transparent)]
    Tensor(#[from] reclip_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io { path: path.into(), error }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.into(), msg: msg.into() }
    }

    /// `NoUsableSample` with the report, or `EmptySource` saying what was
    /// `found` where the report is clean.
    pub(crate) fn no_usable_sample(dataset: impl Into<String>, found: impl Into<String>, report: DataReport) -> Self {
        if report.is_clean() {
            Error::EmptySource { dataset: dataset.into(), found: found.into() }
        } else {
            Error::NoUsableSample { dataset: dataset.into(), report: Box::new(report) }
        }
    }

    pub(crate) fn option(option: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidOption { option, msg: msg.into() }
    }
}
