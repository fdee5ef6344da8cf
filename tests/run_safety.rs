//! End to end: a run is never lost or overwritten by accident. A diverging
//! run stops at the step that diverged and keeps its last good checkpoint,
//! which a resume with a lower learning rate continues; a corrupt latest
//! checkpoint falls back to the one before; an existing run, or a command's
//! own input, is not written over.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn reclip(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reclip")).args(args).current_dir(cwd).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A 6-step run of the tiny model in `cwd`, into `out` (relative to it).
fn train<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--model",
        "tiny.json",
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--low-res",
        "8",
        "--high-res",
        "16",
        "--text-len",
        "8",
        "--log-every",
        "1",
        "--eval-every",
        "0",
        "--workers",
        "1",
        "--probe-steps",
        "1",
        "--quiet",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    args
}

fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.json"), common::TINY).unwrap();
    let cwd = dir.path().to_path_buf();
    (dir, cwd)
}

fn latest(run: &Path) -> String {
    std::fs::read_to_string(run.join("checkpoints/latest")).unwrap()
}

fn step_folders(run: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_diverging_run_stops_at_its_step_and_a_resume_with_a_lower_lr_continues() {
    let (_dir, cwd) = scratch();
    let run = cwd.join("run");
    let first = reclip(&train("run", &["--stop-after", "2", "--checkpoint-every", "0"]), &cwd);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(latest(&run), "step-0000002");

    // An absurd learning rate: the weights blow up and the loss stops being a number.
    let diverged = reclip(&["train", "--resume", "run", "--lr", "1e30", "--quiet"], &cwd);
    let message = stderr(&diverged);
    assert_eq!(diverged.status.code(), Some(2), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.starts_with("error: step ") && message.contains("last good checkpoint is step 2"), "{message}");
    assert_eq!(latest(&run), "step-0000002", "the diverged run saved over its last good checkpoint");
    assert!(!run.join("report.json").exists());

    let resumed = reclip(&["train", "--resume", "run", "--lr", "1e-3", "--quiet"], &cwd);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(latest(&run), "step-0000006");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let args: Vec<&str> = saved["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.contains(&"--lr=0.001"), "the lower learning rate is not kept for later resumes: {args:?}");
    // Paths are stored absolute: a resume from another folder finds the model.
    let model = args[args.iter().position(|&a| a == "--model").unwrap() + 1];
    assert_eq!(Path::new(model), cwd.join("tiny.json"));

    // What a resumed run cannot change is refused, not ignored.
    let refused = reclip(&["train", "--resume", "run", "--batch-size", "8"], &cwd);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--batch-size"), "{}", stderr(&refused));
}

#[test]
fn a_corrupt_latest_checkpoint_falls_back_to_the_one_before() {
    let (_dir, cwd) = scratch();
    let run = cwd.join("run");
    let first = reclip(&train("run", &["--stop-after", "4", "--checkpoint-every", "1"]), &cwd);
    assert!(first.status.success(), "{}", stderr(&first));
    // The newest two are kept.
    assert_eq!(step_folders(&run), ["step-0000003", "step-0000004"]);
    let model = run.join("checkpoints/step-0000004/model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();

    let resumed = reclip(&["train", "--resume", "run", "--quiet"], &cwd);
    let message = stderr(&resumed);
    assert!(resumed.status.success(), "{message}");
    assert!(message.contains("warning") && message.contains("step-0000003"), "{message}");
    assert_eq!(latest(&run), "step-0000006");

    // A pointer that leads out of the run is not followed.
    std::fs::write(run.join("checkpoints/latest"), "../../elsewhere").unwrap();
    let resumed = reclip(&["train", "--resume", "run", "--quiet"], &cwd);
    let message = stderr(&resumed);
    assert!(resumed.status.success(), "{message}");
    assert!(message.contains("not a step folder"), "{message}");
}

#[test]
fn an_existing_run_or_an_input_is_never_written_over() {
    let (_dir, cwd) = scratch();
    let run = cwd.join("run");
    let first = reclip(&train("run", &[]), &cwd);
    assert!(first.status.success(), "{}", stderr(&first));
    let model = run.join("model.safetensors");
    let before = std::fs::read(&model).unwrap();

    let again = reclip(&train("run", &[]), &cwd);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("already holds a run") && stderr(&again).contains("--overwrite"));
    std::fs::write(cwd.join("notes.txt"), "mine").unwrap();
    let onto_file = reclip(&train("notes.txt", &[]), &cwd);
    assert!(stderr(&onto_file).contains("is a file, not a folder"), "{}", stderr(&onto_file));

    let model_str = model.to_str().unwrap();
    let embed = |extra: &[&str]| {
        let mut args = vec!["embed", "--checkpoint", model_str, "--texts", "notes.txt"];
        args.extend_from_slice(extra);
        reclip(&args, &cwd)
    };
    let onto_model = embed(&["--out", model_str, "--overwrite"]);
    assert_eq!(onto_model.status.code(), Some(2));
    assert!(stderr(&onto_model).contains("is the --checkpoint input"), "{}", stderr(&onto_model));
    let onto_notes = embed(&["--out", "notes.txt"]);
    assert!(stderr(&onto_notes).contains("is the --texts input"), "{}", stderr(&onto_notes));
    assert_eq!(std::fs::read(&model).unwrap(), before, "the model was written over");
    assert_eq!(std::fs::read_to_string(cwd.join("notes.txt")).unwrap(), "mine");

    // --overwrite replaces the run's own files, and only those.
    std::fs::write(run.join("mine.txt"), "kept").unwrap();
    let replaced = reclip(&train("run", &["--overwrite", "--seed", "1"]), &cwd);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    assert_ne!(std::fs::read(&model).unwrap(), before, "the run was not replaced");
    assert_eq!(std::fs::read_to_string(run.join("mine.txt")).unwrap(), "kept");
}
