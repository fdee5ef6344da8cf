//! A run's folder (`--out`) and `run.json`, the record of how the run was
//! started that `--resume` reads back. A new run never writes into a folder
//! holding someone's files: an existing run is continued (`--resume`) or
//! replaced on request (`--overwrite`), anything else is refused.

use anyhow::{Context, bail};
use clap::ArgMatches;
use clap::parser::ValueSource;
use reclip_model::ModelConfig;
use std::path::{Path, PathBuf};

const RUN_FILE: &str = "run.json";

/// What `reclip train` writes into its folder.
pub const TRAIN_OUTPUTS: &[&str] =
    &[RUN_FILE, "metrics.jsonl", "report.json", "curves.png", "model.safetensors", "checkpoints"];

/// What `reclip compare` writes into its folder (each schedule's run in its own).
pub const COMPARE_OUTPUTS: &[&str] = &["compare.json", "compare.png", "baseline", "reclip"];

/// The options of `reclip train` whose values name files or folders: stored
/// absolute, so that a run resumed from another working folder finds them.
const PATH_OPTIONS: &[&str] =
    &["--model", "--data", "--eval-zero-shot", "--classnames", "--templates", "--eval-retrieval", "--out"];

/// What a resumed invocation may change: how and how long it runs, and the
/// learning rate (to go on past a divergence). Everything else is the run's.
const RESUME_OPTIONS: &[&str] = &[
    "resume",
    "stop_after",
    "workers",
    "quiet",
    "lr",
    "finetune_lr",
    "keep_checkpoints",
    "device",
    "tf32",
    "dist_backend",
    "bucket_mib",
    "cuda_graphs",
];

/// Makes `out` ready for a new run that writes `outputs`: absent or empty,
/// or holding an earlier run that `overwrite` replaces (only its outputs
/// are removed). `option` names the folder in messages.
pub fn claim(out: &Path, overwrite: bool, outputs: &[&str], option: &str) -> anyhow::Result<()> {
    let shown = out.display();
    let metadata = match std::fs::metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("{option} {shown}: {e}"),
    };
    if !metadata.is_dir() {
        bail!("{option} {shown} is a file, not a folder: give the folder the run should write into");
    }
    let entries: Vec<String> = std::fs::read_dir(out)
        .with_context(|| format!("{option} {shown}"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let earlier: Vec<&str> = outputs.iter().copied().filter(|o| entries.iter().any(|e| e == o)).collect();
    match (entries.is_empty(), earlier.is_empty(), overwrite) {
        (true, _, _) => Ok(()),
        (false, true, _) => bail!(
            "{option} {shown} is not empty and holds no reclip run ({}): give a new or empty folder",
            entries.len()
        ),
        (false, false, false) => bail!(
            "{option} {shown} already holds a run ({}): continue it with `reclip train --resume {shown}`, or replace it with --overwrite",
            earlier.join(", ")
        ),
        (false, false, true) => {
            for name in earlier {
                let path = out.join(name);
                let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                removed.with_context(|| format!("--overwrite: removing {}", path.display()))?;
            }
            Ok(())
        }
    }
}

/// Writes `run.json` for a run started with `argv` (the arguments after the
/// program name) from the working folder `cwd`.
pub fn record(out: &Path, argv: &[String], cwd: &Path) -> anyhow::Result<()> {
    write_args(out, &absolute_args(argv, cwd))
}

fn write_args(out: &Path, argv: &[String]) -> anyhow::Result<()> {
    let run = serde_json::json!({ "args": argv });
    reclip_core::fs::write_atomic(&out.join(RUN_FILE), serde_json::to_string_pretty(&run)?.as_bytes())?;
    Ok(())
}

/// The arguments the run in `dir` was started with, from its `run.json`.
pub fn saved_args(dir: &Path) -> anyhow::Result<Vec<String>> {
    let path = dir.join(RUN_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("--resume {}: {}", dir.display(), path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| path.display().to_string())?;
    v["args"]
        .as_array()
        .and_then(|a| a.iter().map(|s| s.as_str().map(String::from)).collect())
        .ok_or_else(|| anyhow::anyhow!("{}: no \"args\" list", path.display()))
}

/// Refuses options given with `--resume` that the resumed run could not
/// honour (they are fixed by its run.json).
pub fn check_resume_options(matches: &ArgMatches, dir: &Path) -> anyhow::Result<()> {
    let given: Vec<String> = matches
        .ids()
        .map(|id| id.as_str())
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine) && !RESUME_OPTIONS.contains(id))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    if !given.is_empty() {
        let allowed: Vec<String> = RESUME_OPTIONS[1..].iter().map(|id| format!("--{}", id.replace('_', "-"))).collect();
        bail!(
            "--resume {}: {} cannot change for a resumed run (fixed by its run.json); only {} apply",
            dir.display(),
            given.join(", "),
            allowed.join(", ")
        );
    }
    Ok(())
}

/// Whether the option `id` was given on the command line.
pub fn given(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::CommandLine)
}

/// Rewrites the run's `run.json` with `option` set to `value` (a learning
/// rate changed on resume applies to every later resume too).
pub fn update_saved(dir: &Path, option: &str, value: &str) -> anyhow::Result<()> {
    let mut argv = saved_args(dir)?;
    set_option(&mut argv, option, value);
    write_args(dir, &argv)
}

/// Sets `option`'s value in `argv`, in either spelling (`--lr 1` or
/// `--lr=1`), appending it if absent.
fn set_option(argv: &mut Vec<String>, option: &str, value: &str) {
    let joined = format!("{option}=");
    let spaced = argv.iter().position(|a| a == option).filter(|&i| i + 1 < argv.len());
    if let Some(i) = spaced {
        argv[i + 1] = value.to_string();
    } else if let Some(a) = argv.iter_mut().find(|a| a.starts_with(&joined)) {
        *a = format!("{joined}{value}");
    } else {
        argv.push(format!("{joined}{value}"));
    }
}

/// `argv` with the values of [`PATH_OPTIONS`] made absolute against `cwd`.
fn absolute_args(argv: &[String], cwd: &Path) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut pending: Option<&str> = None;
    for arg in argv {
        if let Some(option) = pending.take() {
            out.push(absolute_value(option, arg, cwd));
        } else if let Some(&option) = PATH_OPTIONS.iter().find(|&&o| arg == o) {
            pending = Some(option);
            out.push(arg.clone());
        } else if let Some((option, value)) = arg.split_once('=').filter(|(o, _)| PATH_OPTIONS.contains(o)) {
            out.push(format!("{option}={}", absolute_value(option, value, cwd)));
        } else {
            out.push(arg.clone());
        }
    }
    out
}

/// One path option's value made absolute: every part of a `::`-separated
/// shard list; nothing for `builtin` data or a model preset.
fn absolute_value(option: &str, value: &str, cwd: &Path) -> String {
    let absolute =
        |p: &str| -> String { if p.is_empty() || Path::new(p).is_absolute() { p.to_string() } else { join(cwd, p) } };
    match option {
        "--data" | "--eval-retrieval" if value == "builtin" => value.to_string(),
        "--data" | "--eval-retrieval" => value.split("::").map(absolute).collect::<Vec<_>>().join("::"),
        "--model" if ModelConfig::preset_names().contains(&value) => value.to_string(),
        _ => absolute(value),
    }
}

fn join(cwd: &Path, p: &str) -> String {
    let joined: PathBuf = cwd.join(p);
    joined.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn path_options_become_absolute_in_both_spellings() {
        let argv = strings(&[
            "train",
            "--data",
            "shards/{0..3}.tar::/abs/x.tar",
            "--model=ViT-B-16",
            "--templates=t.txt",
            "--out",
            "runs/a",
            "--lr",
            "1e-3",
        ]);
        let got = absolute_args(&argv, Path::new("/home/u"));
        assert_eq!(
            got,
            strings(&[
                "train",
                "--data",
                "/home/u/shards/{0..3}.tar::/abs/x.tar",
                "--model=ViT-B-16",
                "--templates=/home/u/t.txt",
                "--out",
                "/home/u/runs/a",
                "--lr",
                "1e-3",
            ])
        );
        let builtin = strings(&["train", "--data", "builtin", "--model", "cfg.json"]);
        assert_eq!(absolute_args(&builtin, Path::new("/w"))[2..], strings(&["builtin", "--model", "/w/cfg.json"]));
    }

    #[test]
    fn an_option_is_replaced_or_appended() {
        let mut spaced = strings(&["train", "--lr", "1e-3", "--steps", "5"]);
        set_option(&mut spaced, "--lr", "1e-4");
        assert_eq!(spaced, strings(&["train", "--lr", "1e-4", "--steps", "5"]));
        let mut joined = strings(&["train", "--lr=1e-3"]);
        set_option(&mut joined, "--lr", "1e-4");
        assert_eq!(joined, strings(&["train", "--lr=1e-4"]));
        let mut absent = strings(&["train"]);
        set_option(&mut absent, "--finetune-lr", "2e-4");
        assert_eq!(absent, strings(&["train", "--finetune-lr=2e-4"]));
    }

    #[test]
    fn a_folder_is_claimed_only_when_new_empty_or_an_overwritten_run() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        claim(&run, false, TRAIN_OUTPUTS, "--out").unwrap();
        std::fs::create_dir(&run).unwrap();
        claim(&run, false, TRAIN_OUTPUTS, "--out").unwrap();
        std::fs::write(run.join("run.json"), "{}").unwrap();
        std::fs::write(run.join("notes.txt"), "mine").unwrap();
        std::fs::create_dir(run.join("checkpoints")).unwrap();
        let err = claim(&run, false, TRAIN_OUTPUTS, "--out").unwrap_err().to_string();
        assert!(err.contains("already holds a run") && err.contains("--overwrite"), "{err}");
        claim(&run, true, TRAIN_OUTPUTS, "--out").unwrap();
        assert!(!run.join("run.json").exists() && !run.join("checkpoints").exists());
        assert_eq!(std::fs::read_to_string(run.join("notes.txt")).unwrap(), "mine");
        let err = claim(&run, true, TRAIN_OUTPUTS, "--out").unwrap_err().to_string();
        assert!(err.contains("holds no reclip run"), "{err}");
        let err = claim(&run.join("notes.txt"), true, TRAIN_OUTPUTS, "--out").unwrap_err().to_string();
        assert!(err.contains("is a file, not a folder"), "{err}");
    }
}
