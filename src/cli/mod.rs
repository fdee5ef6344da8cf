//! Command-line interface: argument parsing and one module per subcommand.

mod compare;
mod device;
mod embed;
mod eval;
mod flops;
mod numbers;
mod ranks;
mod run_dir;
mod shards;
mod speed;
mod train;

use clap::{ArgMatches, Parser, Subcommand};
use reclip_core::cpu::threads::on_pool;

#[derive(Parser)]
#[command(name = "reclip", version, about = "Resource-efficient CLIP training (RECLIP), in Rust and CUDA")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a CLIP model with the RECLIP schedule (or the baseline, or any stages); ends with the savings report.
    Train(train::TrainArgs),
    /// Zero-shot accuracy and retrieval recall of a checkpoint.
    Eval(eval::EvalArgs),
    /// GFLOPs per sample of each tower at given image sizes and text lengths.
    Flops(flops::FlopsArgs),
    /// Train the baseline and RECLIP for the same steps on the same data, and compare them.
    Compare(train::TrainArgs),
    /// Write image and text features of a checkpoint to a safetensors file.
    Embed(embed::EmbedArgs),
    /// Training throughput and model FLOPs utilisation at several image sizes (random inputs).
    Speed(speed::SpeedArgs),
    /// Check in seconds that a device runs reclip's kernels and GEMMs and agrees with the CPU.
    Device(device::DeviceCheckArgs),
    /// Count the samples of WebDataset shards and write open_clip's sizes.json beside them.
    IndexShards(shards::IndexShardsArgs),
}

/// Runs the command; `matches` (what the command line held, from which
/// `cli` was parsed) tell an option given from one left at its default.
pub fn run(cli: Cli, matches: &ArgMatches) -> anyhow::Result<()> {
    let sub = |name: &str| matches.subcommand_matches(name).expect("the parsed subcommand");
    let one = ranks::refuse_several;
    match cli.command {
        Command::Train(args) => ranks::end(train::run(args, sub("train"))),
        Command::Compare(args) => ranks::end(compare::run(args)),
        // Commands that compute run on the compute pool's threads; train and
        // compare go there in the trainer, once their ranks have sized the pool.
        Command::Eval(args) => one("eval").and_then(|_| on_pool(|| eval::run(args))),
        Command::Flops(args) => one("flops").and_then(|_| flops::run(args)),
        Command::Embed(args) => one("embed").and_then(|_| on_pool(|| embed::run(args))),
        Command::Speed(args) => one("speed").and_then(|_| on_pool(|| speed::run(args))),
        Command::Device(args) => one("device").and_then(|_| device::run(args)),
        Command::IndexShards(args) => one("index-shards").and_then(|_| shards::run(args)),
    }
}

/// Parses the arguments a `reclip train` run was started with (saved in its
/// run.json) back into its options.
fn parse_train_args(argv: &[String]) -> anyhow::Result<train::TrainArgs> {
    let cli = Cli::try_parse_from(std::iter::once("reclip".to_string()).chain(argv.iter().cloned())).map_err(|e| {
        anyhow::anyhow!("the saved options do not parse: {}", e.to_string().lines().next().unwrap_or(""))
    })?;
    match cli.command {
        Command::Train(args) => Ok(args),
        _ => anyhow::bail!("the saved options are not those of `reclip train`"),
    }
}
