//! The `reclip` binary as a user meets it: `reclip flops` gives open_clip's
//! published figures, and every mistake a user can make is one line on
//! stderr with exit code 2 — no panic, no backtrace.

use serde_json::Value;
use std::process::{Command, Output};

fn reclip(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reclip")).args(args).env_remove("RUST_BACKTRACE").output().unwrap()
}

#[test]
fn flops_of_vit_b_16_match_open_clips_profile() {
    let out = reclip(&["flops", "--model", "ViT-B-16", "--image-size", "64,224", "--text-len", "77", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gflops = |tower: &str, size: u64| {
        let row = json["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tower"] == tower && r["size"] == size)
            .unwrap_or_else(|| panic!("no {tower} row at {size}"));
        (
            row["tokens"].as_u64().unwrap(),
            row["forward_gflops"].as_f64().unwrap(),
            row["training_gflops"].as_f64().unwrap(),
        )
    };
    // open_clip docs/model_profile.csv: ViT-B-16 image 35.13, text 5.96 GFLOPs.
    let (tokens, image, training) = gflops("image", 224);
    assert_eq!(tokens, 197);
    assert_eq!(format!("{image:.2}"), "35.13");
    assert!((training - 3.0 * image).abs() < 1e-9);
    let (_, text, _) = gflops("text", 77);
    assert_eq!(format!("{text:.2}"), "5.96");
    // RECLIP's 64 px: 17 tokens, about a twelfth of the 224 px cost.
    let (tokens, small, _) = gflops("image", 64);
    assert_eq!(tokens, 17);
    assert!(image / small > 11.5 && image / small < 12.5, "{image} / {small}");

    // FLIP's 50% at 224 px: the transformer on 99 tokens, the patch embedding on all 196 patches.
    let out = reclip(&["flops", "--model", "ViT-B-16", "--patch-dropout", "0.5", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &v["rows"][0];
    assert_eq!((row["tokens"].as_u64(), v["patch_dropout"].as_f64()), (Some(99), Some(0.5)), "{v}");
    let dropped = row["forward_gflops"].as_f64().unwrap();
    assert!(dropped / image > 0.45 && dropped / image < 0.51, "{dropped} / {image}");
    fails_with(&["flops", "--patch-dropout", "1"], &["--patch-dropout", "below 1"]);
}

/// Runs `args`, expects exit code 2 and one line on stderr containing every
/// one of `needles`.
fn fails_with(args: &[&str], needles: &[&str]) {
    let out = reclip(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?} printed more than one line:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: {stderr:?} does not mention {n:?}");
    }
}

#[test]
fn user_errors_are_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    fails_with(&["train", "--model", "ViT-B-17", "--out", out], &["ViT-B-17", "ViT-B-16"]);
    fails_with(&["flops", "--model", "ViT-B-16", "--image-size", "100"], &["--image-size 100", "patch size 16"]);
    fails_with(&["train", "--high-res", "100", "--out", out], &["100", "patch size 8"]);
    fails_with(&["train", "--data", "no/such/list.csv", "--out", out], &["no/such/list.csv"]);
    fails_with(&["train", "--device", "tpu", "--out", out], &["--device", "tpu"]);
    fails_with(&["eval", "--checkpoint", "no/such/model.safetensors"], &["no/such/model.safetensors"]);
    fails_with(&["train", "--resume", "no/such/run"], &["no/such/run"]);
    fails_with(&["train", "--stages", "32:0.5,64:0.4", "--out", out], &["--stages 32:0.5,64:0.4", "add up to 0.9"]);
    fails_with(&["train", "--stages", "32:0.5,60:0.5", "--out", out], &["stage2", "60", "patch size 8"]);
    fails_with(&["train", "--switch-moments", "keep", "--out", out], &["--switch-moments", "keep"]);
    // A file that is not a checkpoint.
    let bogus = dir.path().join("bogus.safetensors");
    std::fs::write(&bogus, b"not a safetensors file").unwrap();
    fails_with(&["eval", "--checkpoint", bogus.to_str().unwrap()], &["bogus.safetensors"]);
    // A valid model config whose checkpoint does not fit it.
    let tiny = dir.path().join("tiny.json");
    std::fs::write(
        &tiny,
        r#"{"embed_dim": 16, "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 32},
            "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1}}"#,
    )
    .unwrap();
    let run = dir.path().join("tiny-run");
    let train = reclip(&[
        "train",
        "--model",
        tiny.to_str().unwrap(),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--low-res",
        "8",
        "--eval-every",
        "0",
        "--probe-steps",
        "1",
        "--workers",
        "1",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(train.status.success(), "{}", String::from_utf8_lossy(&train.stderr));
    let model = run.join("model.safetensors");
    fails_with(&["eval", "--checkpoint", model.to_str().unwrap(), "--model", "reclip-tiny"], &["model.safetensors"]);
}

#[test]
fn cuda_without_a_gpu_is_an_error_not_a_fallback() {
    // Where kernel tests run on a GPU, there is one: nothing to check.
    if std::env::var("RECLIP_TEST_DEVICE").is_ok_and(|d| d == "cuda") {
        return;
    }
    fails_with(&["speed", "--model", "reclip-tiny", "--device", "cuda", "--steps", "1"], &["--device", "CUDA"]);
    fails_with(&["device", "--device", "cuda"], &["--device cuda", "CUDA"]);
}

#[test]
fn speed_takes_cuda_graphs_auto_or_off() {
    fails_with(&["speed", "--model", "reclip-tiny", "--cuda-graphs", "bogus"], &["--cuda-graphs", "'bogus'"]);
    let args = ["speed", "--model", "reclip-tiny", "--image-size", "32", "--batch-size", "4", "--steps", "1"];
    let out = reclip(&[&args[..], &["--device", "cpu", "--cuda-graphs", "off", "--json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rows"][0]["cuda_graphs"]["plain_because"], "--cuda-graphs off", "{json}");
}

#[test]
fn the_device_check_compares_kernels_and_gemms_with_the_cpu() {
    let out = reclip(&["device", "--device", "cpu"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("cpu: agrees with the CPU") && stdout.contains("GEMM bf16"), "{stdout}");
}

#[test]
fn options_out_of_range_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    for (args, needles) in [
        (&["--lr", "NaN"][..], &["--lr NaN", "positive"][..]),
        (&["--lr=-1"], &["--lr -1", "positive"]),
        (&["--finetune-lr", "inf"], &["--finetune-lr inf"]),
        (&["--wd", "nan"], &["--wd NaN"]),
        (&["--grad-clip=-1"], &["--grad-clip -1"]),
        (&["--finetune-fraction", "1.5"], &["--finetune-fraction 1.5"]),
        (&["--batch-size", "1"], &["--batch-size 1", "at least 2"]),
        (&["--workers", "100000"], &["--workers 100000", "256"]),
        (&["--high-res", "16", "--low-res", "32"], &["--low-res 32", "16"]),
        (&["--low-res", "160"], &["--low-res 160", "80"]),
        (&["--text-len", "12", "--low-text-len", "20"], &["--low-text-len 20", "12"]),
        (&["--text-len", "0"], &["--text-len 0", "24"]),
        (&["--stages", "32:0:1"], &["--stages 32:0:1", "stage1", "text length 0"]),
        (&["--steps", "0"], &["--steps 0"]),
        (&["--probe-steps", "0"], &["--probe-steps 0", "1000"]),
        (&["--keep-checkpoints", "0"], &["--keep-checkpoints 0"]),
        (&["--log-every", "0"], &["--log-every 0"]),
        // A batch no machine holds is refused from the config, before any allocation.
        (
            &["--model", "ViT-L-14", "--batch-size", "50000"],
            &["--model ViT-L-14", "--batch-size 50000", "TB of memory"],
        ),
    ] {
        let argv: Vec<&str> = ["train", "--out", out].iter().chain(args).copied().collect();
        fails_with(&argv, needles);
        fails_with(&[&["compare"], &argv[1..]].concat(), needles);
    }
    assert!(!dir.path().join("run").exists(), "a refused `train` wrote into --out");
    fails_with(&["compare", "--schedule", "baseline", "--out", out], &["--schedule baseline", "both"]);
    // A resumed run keeps its length: --steps with --resume is refused, not ignored.
    fails_with(&["train", "--resume", out, "--steps", "10"], &["--resume", "--stop-after"]);
}

#[test]
fn train_checks_loss_accum_freq_and_patch_dropout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    fails_with(&["train", "--loss", "sigmoid", "--steps", "1", "--out", out], &["--loss", "'sigmoid'", "siglip"]);
    // A SigLIP config (it has a logit bias) cannot be trained with the softmax loss.
    let config = dir.path().join("siglip.json");
    let json = r#"{"embed_dim": 64, "init_logit_scale": 2.302585092994046, "init_logit_bias": -10.0,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 16, "width": 64, "heads": 2, "layers": 1}}"#;
    std::fs::write(&config, json).unwrap();
    let config = config.to_str().unwrap();
    fails_with(
        &["train", "--model", config, "--loss", "clip", "--steps", "1", "--out", out],
        &["--loss clip", "logit bias", "--loss siglip"],
    );
    assert!(!dir.path().join("run").exists(), "a refused run wrote nothing");
    fails_with(&["train", "--accum-freq", "0", "--steps", "1", "--out", out], &["--accum-freq 0", "1 to 1024"]);
    for (spec, needle) in [
        ("1", "1 is not a share of patches dropped"),
        ("0.5,0.5,0", "3 probabilities for the schedule's 2 phases"),
        ("lots", "'lots' is not a number"),
    ] {
        fails_with(
            &["train", "--patch-dropout", spec, "--steps", "1", "--out", out],
            &[&format!("--patch-dropout {spec}"), needle],
        );
    }
    assert!(!dir.path().join("run").exists(), "a refused run wrote nothing");
}
