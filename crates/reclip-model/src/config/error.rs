use std::path::PathBuf;

use crate::memory::human_bytes;

/// Why a model config could not be read, parsed or used. The loaders wrap the
/// error in [`ConfigError::In`], naming the file, preset or string it came
/// from, so that the message alone says where to look.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read model config {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid JSON: {0}")]
    Syntax(serde_json::Error),
    /// A value of the wrong type, or a missing required field.
    #[error("{0}")]
    Schema(String),
    #[error(
        "unknown field `{field}`: open_clip's schema has no such field (the fields reclip reads here are: {accepted})"
    )]
    UnknownField { field: String, accepted: String },
    #[error("`{field}` = {value} is not supported: reclip does not implement {feature} (accepted: {accepted})")]
    Unsupported { field: String, value: String, feature: &'static str, accepted: String },
    #[error("`{field}` = {value}: {reason}")]
    Invalid { field: String, value: String, reason: String },
    #[error("image size {image_size} is not a positive multiple of the patch size {patch_size}")]
    PatchGrid { image_size: usize, patch_size: usize },
    #[error("image size {image_size} is above reclip's ceiling of {} px", super::limits::MAX_IMAGE_SIZE)]
    ImageSize { image_size: usize },
    /// A count derived from the config (parameters, tokens, FLOPs, bytes)
    /// that does not fit in 64 bits.
    #[error("{what} would overflow 64 bits")]
    Overflow { what: String },
    /// More memory than there is, by an estimate that is a lower bound
    /// (`reclip_model::memory`). `culprit` is the config field whose open_clip
    /// default would shrink the estimate most, with its value, if any would.
    #[error(
        "{what} needs at least {} of memory, more than the {} available{}",
        human_bytes(*needed),
        human_bytes(*available),
        culprit.as_ref().map(|c| format!("; most of it is due to {c}")).unwrap_or_default()
    )]
    TooLarge { what: String, needed: u64, available: u64, culprit: Option<String> },
    #[error("text length {length} is outside 1..={context_length} (the text tower's context length)")]
    TextLength { length: usize, context_length: usize },
    #[error("unknown model preset `{name}`; the presets are: {known}")]
    UnknownPreset { name: String, known: String },
    #[error("{origin}: {error}")]
    In { origin: String, error: Box<ConfigError> },
}

impl ConfigError {
    pub(crate) fn within(self, origin: impl Into<String>) -> Self {
        ConfigError::In { origin: origin.into(), error: Box::new(self) }
    }

    pub(crate) fn invalid(field: &str, value: impl ToString, reason: impl Into<String>) -> Self {
        ConfigError::Invalid { field: field.to_string(), value: value.to_string(), reason: reason.into() }
    }

    pub(crate) fn schema(error: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = error.path().to_string();
        let inner = error.into_inner();
        // The root path prints as "."; a missing top-level field needs no location.
        if path == "." {
            ConfigError::Schema(inner.to_string())
        } else {
            ConfigError::Schema(format!("`{path}`: {inner}"))
        }
    }
}
