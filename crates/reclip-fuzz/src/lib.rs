//! Fuzz and stress tests of everything reclip reads from outside, on stable
//! Rust.
//!
//! `reclip-fuzz` mutates valid inputs built in code and feeds them to the
//! public APIs that parse files and strings: CSV/TSV image–caption lists
//! (`csv`), WebDataset tar shards (`tar`), shard-list brace patterns
//! (`brace`), safetensors checkpoints and the models loaded from them
//! (`checkpoint`), open_clip model configs (`config`), the CLIP tokenizer
//! (`tokenizer`) and JPEG/PNG decoding to a view (`image`). Mutations flip
//! bits, write boundary bytes and integers, insert, delete, duplicate and
//! splice ranges and replace numbers in text with extremes; checksums (PNG
//! chunks, tar headers) and the safetensors header length are recomputed on
//! half the inputs so that mutations reach the parsers behind them. An input
//! must never panic, allocate over 1 GiB at once or run for a minute, and
//! each target checks invariants of what was accepted (an image is exactly
//! the view's square, a CSV record is a row or a reported problem, token
//! ids are framed and in the vocabulary, a loaded model encodes, a config
//! reads back from its own JSON unchanged). The quick tests
//! (`cargo test -p reclip-fuzz`) run a few hundred seeded inputs per target;
//! a long campaign runs each target for a time, on all cores:
//!
//! ```text
//! cargo run --release -p reclip-fuzz -- all --seconds 600
//! ```
//!
//! Release builds do not check integer overflow; to find overflows too, add
//! `CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true` (with `--target-dir
//! target/fuzz`, so that the normal release build is kept). Crashing and
//! failing inputs are saved under `target/fuzz-crashes/<target>-<case>.bin`;
//! `reclip-fuzz <target> --replay FILE` runs one again, and
//! `reclip-fuzz <target> --seed K --case N` regenerates and saves input `N`
//! of seed `K` (what to do when the memory limit or the hang detector stops
//! a campaign, since those cannot save the input themselves).

pub mod campaign;
pub mod json;
pub mod memory;
pub mod mutate;
pub mod panics;
pub mod samples;
pub mod scratch;
pub mod targets;
pub mod views;

pub use campaign::{Budget, Outcome, Settings, Summary};
pub use targets::{TARGETS, Target, Verdict, target};
