//! The `reclip` command: train CLIP models with the RECLIP recipe, evaluate
//! them, count their FLOPs, and compare RECLIP with a high-resolution baseline.

mod cli;

use clap::Parser;
use std::process::ExitCode;

// Training allocates and frees large activations every step; mimalloc keeps
// freed pages for reuse instead of returning them to the OS each time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, no backtrace: the causes joined with ": ".
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
