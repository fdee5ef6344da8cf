//! The `reclip` command: train CLIP models with the RECLIP recipe, evaluate
//! them, count their FLOPs, and compare RECLIP with a high-resolution baseline.

mod cli;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    reclip::allocator::keep_freed_memory();
    let matches = cli::Cli::command().get_matches();
    let args = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli::run(args, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, no backtrace: the causes joined with ": ".
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
