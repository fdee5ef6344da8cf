//! `reclip index-shards`: counts the complete samples of WebDataset shards
//! and writes open_clip's `sizes.json` into each directory they are in, so
//! that open_clip knows the list's size without reading every shard.

use anyhow::{Context, bail};
use clap::Args;
use rayon::prelude::*;
use reclip_data::{DataReport, SIZES_FILE, count_shard_samples, expand_shard_list};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct IndexShardsArgs {
    /// The shards: paths or brace patterns (`data/{00000..00127}.tar`), `::`-separated, as for `reclip train --data`.
    #[arg(long, value_name = "LIST")]
    data: String,
    /// Threads counting shards (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Replace an existing sizes.json (without it, one is an error).
    #[arg(long)]
    overwrite: bool,
}

/// The shards of one directory, and the sizes.json that will describe them.
struct Folder {
    sizes: PathBuf,
    /// Each shard's file name and its index in the list.
    shards: Vec<(String, usize)>,
}

pub fn run(args: IndexShardsArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let workers = match args.workers {
        Some(0) => bail!("--workers 0: expected at least 1 thread"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let shards: Vec<PathBuf> =
        expand_shard_list(&args.data).context("--data")?.into_iter().map(PathBuf::from).collect();
    let folders = folders(&shards)?;
    if !args.overwrite {
        // Before counting, which may take long, and again before each write.
        folders.iter().try_for_each(|f| refuse_existing(&f.sizes))?;
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(workers).build().context("--workers")?;
    let counted: Vec<(u64, DataReport)> = pool.install(|| {
        shards
            .par_iter()
            .map(|shard| {
                let mut report = DataReport::new(shard.display().to_string());
                let samples = count_shard_samples(shard, &mut report);
                (samples as u64, report)
            })
            .collect()
    });
    let mut report = DataReport::new(&args.data);
    counted.iter().for_each(|(_, r)| report.merge(r));
    let samples: u64 = counted.iter().map(|(n, _)| n).sum();
    println!(
        "{} shard(s), {samples} complete sample(s), counted in {:.1} s with {workers} thread(s)",
        shards.len(),
        start.elapsed().as_secs_f64()
    );
    for folder in &folders {
        let sizes: BTreeMap<&str, u64> = folder.shards.iter().map(|(name, i)| (name.as_str(), counted[*i].0)).collect();
        if !args.overwrite {
            refuse_existing(&folder.sizes)?;
        }
        let mut json = serde_json::to_string_pretty(&sizes)?;
        json.push('\n');
        reclip_core::fs::write_atomic(&folder.sizes, json.as_bytes())?;
        println!("wrote {} ({} shard(s))", folder.sizes.display(), sizes.len());
    }
    if !report.is_clean() {
        println!("{report}");
    }
    Ok(())
}

/// The shards grouped by the directory they are in, each of which must be a
/// regular file: a count of 0 written for a mistyped or missing shard would
/// pass for a true one. Directories are told apart by their canonical path,
/// so that `a/x.tar` and `a/./y.tar` share one sizes.json.
fn folders(shards: &[PathBuf]) -> anyhow::Result<Vec<Folder>> {
    let mut folders: Vec<Folder> = Vec::new();
    let mut by_dir: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (i, shard) in shards.iter().enumerate() {
        let meta = std::fs::metadata(shard).with_context(|| format!("--data: shard {}", shard.display()))?;
        if !meta.is_file() {
            bail!("--data: shard {} is not a regular file", shard.display());
        }
        let name = shard
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("--data: shard {}: sizes.json can only hold UTF-8 file names", shard.display()))?;
        let dir = match shard.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let canonical = dir.canonicalize().with_context(|| format!("--data: folder {}", dir.display()))?;
        let at = *by_dir.entry(canonical).or_insert_with(|| {
            folders.push(Folder { sizes: dir.join(SIZES_FILE), shards: Vec::new() });
            folders.len() - 1
        });
        folders[at].shards.push((name.to_string(), i));
    }
    Ok(folders)
}

/// An error naming `sizes` if anything is there already (even a dangling link).
fn refuse_existing(sizes: &Path) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(sizes).is_ok() {
        bail!("{} already exists: pass --overwrite to replace it", sizes.display());
    }
    Ok(())
}
