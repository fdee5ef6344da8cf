//! Command-line interface: argument parsing and one module per subcommand.

mod flops;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "reclip", version, about = "Resource-efficient CLIP training (RECLIP), in Rust and CUDA")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// GFLOPs per sample of each tower at given image sizes and text lengths.
    Flops(flops::FlopsArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Flops(args) => flops::run(args),
    }
}
