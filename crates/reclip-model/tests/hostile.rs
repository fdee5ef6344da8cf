//! Hostile configs and checkpoints: sizes above reclip's ceilings, counts
//! that would overflow, models that cannot fit in memory, files that are not
//! files, weights that are not finite. Each is refused with a one-line error
//! naming what is wrong, before anything large is allocated, and nothing
//! panics.

use std::collections::HashMap;
use std::path::Path;

use reclip_core::{Device, Tensor};
use reclip_model::checkpoint::{self, CheckpointError};
use reclip_model::clip::CONFIG_KEY;
use reclip_model::config::limits::MAX_IMAGE_SIZE;
use reclip_model::{Clip, ConfigError, ModelConfig, flops};

const TINY: &str = r#"{
  "embed_dim": 16,
  "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 32, "mlp_ratio": 2.0},
  "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 1, "layers": 1, "mlp_ratio": 2.0}
}"#;

fn vit_b_16() -> ModelConfig {
    ModelConfig::preset("ViT-B-16").unwrap()
}

/// ViT-B-16 with one edit, validated.
fn refused(edit: impl FnOnce(&mut ModelConfig)) -> String {
    let mut config = vit_b_16();
    edit(&mut config);
    config.validate().expect_err("the config must be refused").to_string()
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "`{part}` is missing from: {message}");
    }
}

/// A case's name, its edit of ViT-B-16 and what the error must say.
type Case = (&'static str, fn(&mut ModelConfig), &'static [&'static str]);

#[test]
fn sizes_above_the_ceilings_are_refused_naming_field_value_and_ceiling() {
    let cases: [Case; 11] = [
        ("layers", |c| c.vision_cfg.layers = 1_000_000_000, &["`vision_cfg.layers` = 1000000000", "1024"]),
        ("text layers", |c| c.text_cfg.layers = 1025, &["`text_cfg.layers` = 1025", "ceiling of 1024"]),
        ("width", |c| c.vision_cfg.width = 65536 * 2, &["`vision_cfg.width` = 131072", "ceiling of 65536"]),
        ("text width", |c| c.text_cfg.width = 65544, &["`text_cfg.width` = 65544", "ceiling of 65536"]),
        ("embed", |c| c.embed_dim = 65537, &["`embed_dim` = 65537", "ceiling of 65536"]),
        ("vocab", |c| c.text_cfg.vocab_size = 1_048_577, &["`text_cfg.vocab_size` = 1048577", "1048576"]),
        ("context", |c| c.text_cfg.context_length = 4097, &["`text_cfg.context_length` = 4097", "4096"]),
        ("image", |c| c.vision_cfg.image_size = 80000, &["`vision_cfg.image_size` = 80000", "ceiling of 4096 px"]),
        ("mlp", |c| c.vision_cfg.mlp_ratio = 64.5, &["`vision_cfg.mlp_ratio` = 64.5", "ceiling of 64"]),
        ("text mlp", |c| c.text_cfg.mlp_ratio = f64::INFINITY, &["`text_cfg.mlp_ratio` = inf", "ceiling of 64"]),
        (
            "patch",
            |c| c.vision_cfg.patch_size = 448,
            &["`vision_cfg.patch_size` = 448", "`vision_cfg.image_size` = 224"],
        ),
    ];
    for (name, edit, parts) in cases {
        let message = refused(edit);
        assert_mentions(&message, parts);
        assert!(!message.contains('\n'), "{name}: {message}");
    }
}

#[test]
fn a_config_at_every_ceiling_is_valid_and_its_counts_do_not_wrap() {
    let mut config = vit_b_16();
    config.embed_dim = 65536;
    config.vision_cfg = reclip_model::VisionConfig {
        image_size: 4096,
        layers: 1024,
        width: 65536,
        head_width: 64,
        mlp_ratio: 64.0,
        patch_size: 1,
        act_kwargs: None,
        patch_dropout: 0.0,
    };
    config.text_cfg = reclip_model::TextConfig {
        context_length: 4096,
        vocab_size: 1_048_576,
        width: 65536,
        heads: 1024,
        layers: 1024,
        mlp_ratio: 64.0,
        act_kwargs: None,
    };
    config.validate().unwrap();
    // Parameters fit in 64 bits at the ceilings: about 1.1e15.
    let params = config.num_params().unwrap();
    assert!(params > 1_000_000_000_000_000 && params < 2_000_000_000_000_000, "{params}");
    // FLOPs do not (16.8M image tokens): an error, not a wrapped count.
    let message = flops::at_config_sizes(&config).unwrap_err().to_string();
    assert_eq!(message, "the image tower's FLOPs would overflow 64 bits");
}

#[test]
fn every_image_size_goes_through_the_ceiling() {
    let config = vit_b_16();
    let message = config.vision_cfg.grid_size(80000).unwrap_err().to_string();
    assert_eq!(message, "image size 80000 is above reclip's ceiling of 4096 px");
    assert_eq!(config.vision_cfg.grid_size(MAX_IMAGE_SIZE).unwrap(), 256);
    // Once 0.17 GFLOPs: 4294967296² wrapped to 0 patches.
    assert!(matches!(flops::model(&config, 4_294_967_296, 77), Err(ConfigError::ImageSize { .. })));
    assert!(matches!(config.vision_cfg.tokens_per_image(usize::MAX), Err(ConfigError::ImageSize { .. })));
}

#[test]
fn counts_of_unvalidated_configs_overflow_into_errors() {
    let mut config = vit_b_16();
    config.text_cfg.vocab_size = usize::MAX;
    assert_mentions(&config.text_params().unwrap_err().to_string(), &["the text tower's parameter count"]);
    assert!(matches!(config.num_params(), Err(ConfigError::Overflow { .. })));

    let mut config = vit_b_16();
    config.vision_cfg.width = 1 << 40;
    config.vision_cfg.head_width = 1 << 40;
    assert_mentions(&config.image_params().unwrap_err().to_string(), &["the image tower's parameter count"]);
    assert!(matches!(flops::image_tower(&config, 224), Err(ConfigError::Overflow { .. })));

    let mut config = vit_b_16();
    config.text_cfg.layers = usize::MAX;
    assert!(matches!(flops::text_tower(&config, 77), Err(ConfigError::Overflow { .. })));
}

/// Every value here replaces each number of ViT-B-16's JSON in turn; parsing
/// must give a config or an error, never a panic.
#[test]
fn no_json_makes_the_parser_panic() {
    let numbers = [
        "0",
        "-1",
        "1.5",
        "1e400",
        "-1e400",
        "18446744073709551616",
        "18446744073709551615",
        "9223372036854775807",
        "4294967296",
        "1e-400",
        "\"12\"",
        "null",
        "[]",
        "{}",
        "true",
        &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
    ];
    let base = vit_b_16().to_json();
    let doc: serde_json::Value = serde_json::from_str(&base).unwrap();
    let mut fields = Vec::new();
    for section in ["vision_cfg", "text_cfg"] {
        for key in doc[section].as_object().unwrap().keys() {
            fields.push((Some(section), key.clone()));
        }
    }
    fields.push((None, "embed_dim".to_string()));
    for (section, key) in &fields {
        for number in numbers {
            let mut edited = doc.clone();
            let target = match section {
                Some(s) => &mut edited[s][key],
                None => &mut edited[key],
            };
            *target = serde_json::Value::Null;
            let json = edited.to_string().replacen("null", number, 1);
            if let Ok(config) = ModelConfig::from_json_str(&json) {
                config.num_params().unwrap();
                flops::at_config_sizes(&config).unwrap();
            }
        }
    }
    for hostile in [
        String::new(),
        "[".repeat(100_000),
        "{\"embed_dim\":".repeat(100_000),
        format!("{{\"embed_dim\": 512, \"vision_cfg\": {}, \"text_cfg\": {{}}}}", "[".repeat(10_000)),
        "{\"embed_dim\": 512, \"vision_cfg\": {}, \"text_cfg\": {}, \"audio_cfg\": [[[[[[[[[[]]]]]]]]]]}".into(),
        "\u{0}".into(),
        "\"\\ud800\"".into(),
        "1".repeat(100_000),
    ] {
        assert!(ModelConfig::from_json_str(&hostile).is_err());
    }
}

/// Within every ceiling, and 211 TB of weights.
fn huge_but_valid() -> ModelConfig {
    let mut config = vit_b_16();
    config.vision_cfg.layers = 1024;
    config.vision_cfg.width = 65536;
    config.validate().unwrap();
    config
}

#[cfg(target_os = "linux")]
#[test]
fn a_model_that_cannot_fit_is_refused_before_allocating() {
    assert!(Device::Cpu.memory_bytes().is_some(), "Linux says how much memory there is");
    let message = Clip::new(huge_but_valid(), 0, &Device::Cpu).err().expect("211 TB cannot fit").to_string();
    assert_mentions(
        &message,
        &["allocating the model's weights on cpu needs at least 211.", "TB of memory", "`vision_cfg.width` = 65536"],
    );
    assert!(!message.contains('\n'), "{message}");
}

/// A checkpoint of TINY's weights with `config` (any JSON) as its embedded config.
fn checkpoint_claiming(path: &Path, config: &str) {
    let clip = Clip::new(ModelConfig::from_json_str(TINY).unwrap(), 0, &Device::Cpu).unwrap();
    let meta = HashMap::from([(CONFIG_KEY.to_string(), config.to_string())]);
    checkpoint::save(path, &clip.weights().state_dict(), meta).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn a_checkpoint_claiming_a_huge_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");

    let mut billion = vit_b_16();
    billion.vision_cfg.layers = 1_000_000_000;
    checkpoint_claiming(&path, &serde_json::to_string(&billion).unwrap());
    let message = Clip::load(&path, None, &Device::Cpu).err().unwrap().to_string();
    assert_mentions(&message, &["model.safetensors", "`vision_cfg.layers` = 1000000000", "ceiling of 1024"]);

    checkpoint_claiming(&path, &huge_but_valid().to_json());
    let message = Clip::load(&path, None, &Device::Cpu).err().unwrap().to_string();
    assert_mentions(&message, &["needs at least 211.", "`vision_cfg.width` = 65536"]);
}

#[test]
fn non_finite_weights_are_refused_naming_tensor_count_and_first_element() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let clip = Clip::new(ModelConfig::from_json_str(TINY).unwrap(), 0, &Device::Cpu).unwrap();
    let conv = &clip.weights().visual.conv1;
    let mut values = conv.value().to_vec_f32().unwrap();
    (values[17], values[20], values[30]) = (f32::NAN, f32::INFINITY, f32::NAN);
    conv.set_value(Tensor::from_vec(values, conv.value().dims(), &Device::Cpu).unwrap());
    clip.save(&path).unwrap();

    let err = Clip::load(&path, None, &Device::Cpu).err().unwrap();
    assert!(matches!(err, CheckpointError::NonFinite { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message
            .ends_with("model.safetensors: tensor visual.conv1.weight holds 3 non-finite values (NaN at element 17)"),
        "{message}"
    );
}

#[test]
fn only_regular_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let message = checkpoint::load(dir.path()).err().unwrap().to_string();
    assert_mentions(&message, &[&dir.path().display().to_string(), "is a folder, not a checkpoint file"]);
}

/// Opening a FIFO for reading blocks until a writer comes: the load must
/// refuse it from its metadata.
#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.safetensors");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let message = checkpoint::load(&fifo).err().unwrap().to_string();
    assert_mentions(&message, &["model.safetensors is a FIFO, not a checkpoint file"]);
}

#[cfg(unix)]
#[test]
fn a_config_that_is_a_fifo_or_too_long_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.json");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs").success());
    let message = ModelConfig::from_json_file(&fifo).unwrap_err().to_string();
    assert_mentions(&message, &["model.json", "a FIFO, not a config file"]);
    let long = dir.path().join("long.json");
    std::fs::File::create(&long).unwrap().set_len(reclip_model::config::MAX_CONFIG_BYTES + 1).unwrap();
    let message = ModelConfig::from_json_file(&long).unwrap_err().to_string();
    assert_mentions(&message, &["long.json", "more than a model config's"]);
}

/// A header whose shape disagrees with the tensor's bytes, or whose shape
/// cannot be addressed, is refused naming the tensor.
#[test]
fn a_tensor_whose_shape_does_not_match_its_bytes_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    for (shape, bytes_of_proj, why) in [
        ("[3,5]", 16, "needs 60 bytes, its data holds 16"),
        ("[4294967296,4294967296]", 16, "too large"),
        // No element, but strides that overflow: found by reclip-fuzz.
        ("[0,4294967296,4294967296]", 0, "too large to address"),
    ] {
        let end = 16 + bytes_of_proj;
        let header = format!(
            r#"{{"a":{{"dtype":"F32","shape":[4],"data_offsets":[0,16]}},"visual.proj":{{"dtype":"F32","shape":{shape},"data_offsets":[16,{end}]}}}}"#
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&vec![0; end]);
        std::fs::write(&path, &bytes).unwrap();
        let message = checkpoint::load(&path).err().unwrap().to_string();
        assert_mentions(&message, &["model.safetensors", "tensor visual.proj", why]);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_file_larger_than_memory_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.safetensors");
    let available = Device::Cpu.memory_bytes().unwrap();
    // Sparse: no disk is used.
    std::fs::File::create(&path).unwrap().set_len(available + 1).unwrap();
    let message = checkpoint::load(&path).err().unwrap().to_string();
    assert_mentions(&message, &["huge.safetensors: the file is", "more than the", "of memory available to load it"]);
}
