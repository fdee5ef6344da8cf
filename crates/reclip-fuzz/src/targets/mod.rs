//! The fuzz targets: one per input format reclip reads. Each takes raw bytes,
//! must never panic, and returns `Err` only when an invariant of the API it
//! drives is broken; inputs the API refuses are `Ok(Verdict::Rejected)`.

pub mod brace;
pub mod checkpoint;
pub mod config;
pub mod csv;
pub mod image;
pub mod tar;
pub mod tokenizer;

use rand_chacha::ChaCha8Rng;

/// What the code under test made of a well-handled input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Parsed or decoded, and every invariant held.
    Accepted,
    /// Refused with this error, as a bad input should be.
    Rejected(String),
}

/// Mutates a seed into a new input, or `None` when the seed lacks the structure.
pub type StructuredMutation = fn(&mut ChaCha8Rng, &[u8]) -> Option<Vec<u8>>;

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    /// Valid inputs to mutate; the campaign checks that each is accepted.
    pub seeds: fn() -> Vec<Vec<u8>>,
    pub run: fn(&[u8]) -> Result<Verdict, String>,
    /// Recomputes the checksums or lengths a mutation broke, so that half the
    /// mutated inputs get past the format's integrity checks to the parser.
    pub repair: Option<fn(&mut [u8])>,
    /// Mutates a seed through its structure (JSON values), for formats whose
    /// syntax byte edits nearly always break; used for half the inputs.
    pub structured: Option<StructuredMutation>,
}

pub const TARGETS: &[Target] = &[
    Target { name: "csv", seeds: csv::seeds, run: csv::run, repair: None, structured: None },
    Target { name: "tar", seeds: tar::seeds, run: tar::run, repair: Some(tar::repair), structured: None },
    Target { name: "brace", seeds: brace::seeds, run: brace::run, repair: None, structured: None },
    Target {
        name: "checkpoint",
        seeds: checkpoint::seeds,
        run: checkpoint::run,
        repair: Some(checkpoint::repair),
        structured: Some(checkpoint::mutate_header),
    },
    Target {
        name: "config",
        seeds: config::seeds,
        run: config::run,
        repair: None,
        structured: Some(crate::json::mutate_json),
    },
    Target { name: "tokenizer", seeds: tokenizer::seeds, run: tokenizer::run, repair: None, structured: None },
    Target { name: "image", seeds: image::seeds, run: image::run, repair: Some(image::repair), structured: None },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
