//! Each target as a quick seeded campaign of the `reclip-fuzz` binary, one
//! process per target so that a memory abort or a hang in one target does
//! not hide the others' results. A failure prints the campaign's findings,
//! with the saved inputs to replay.

use std::process::Command;

const SEED: &str = "17";

/// Runs `cases` inputs of `target` (the seeds first); the counts below take
/// one to three seconds each in a debug build on one idle core.
fn quick(target: &str, cases: u64) {
    let output = Command::new(env!("CARGO_BIN_EXE_reclip-fuzz"))
        .args([target, "--cases", &cases.to_string(), "--seed", SEED])
        .output()
        .expect("the fuzz binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{target} failed ({}):\n{stdout}{stderr}", output.status);
    assert!(stdout.starts_with(&format!("{target}: {cases} inputs")), "unexpected summary: {stdout}");
    println!("{stdout}");
}

#[test]
fn csv() {
    quick("csv", 8000);
}

#[test]
fn tar() {
    quick("tar", 8000);
}

#[test]
fn brace() {
    quick("brace", 10_000);
}

#[test]
fn checkpoint() {
    quick("checkpoint", 3000);
}

#[test]
fn config() {
    quick("config", 50_000);
}

#[test]
fn tokenizer() {
    quick("tokenizer", 15_000);
}

#[test]
fn image() {
    quick("image", 15_000);
}
