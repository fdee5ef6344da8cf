//! Model configs: presets, open_clip-style JSON in and out, and the errors a
//! bad or unsupported config gets.

use std::path::PathBuf;

use reclip_model::{ConfigError, ModelConfig};

/// open_clip's ViT-B-16 config file, as its schema spells it.
const VIT_B_16_JSON: &str = r#"{
    "embed_dim": 512,
    "vision_cfg": { "image_size": 224, "layers": 12, "width": 768, "patch_size": 16 },
    "text_cfg": { "context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12 }
}"#;

fn write_config(name: &str, json: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("reclip-model-{name}.json"));
    std::fs::write(&path, json).unwrap();
    path
}

/// ViT-B-16's JSON with `edit` applied, written to a file and loaded.
fn load_edited(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Result<ModelConfig, ConfigError> {
    let mut doc: serde_json::Value = serde_json::from_str(VIT_B_16_JSON).unwrap();
    edit(&mut doc);
    ModelConfig::from_json_file(write_config(name, &doc.to_string()))
}

fn error_message(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let message = load_edited(name, edit).expect_err("the config must be refused").to_string();
    assert!(message.contains(&format!("reclip-model-{name}.json")), "the file is not named in: {message}");
    message
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "`{part}` is missing from: {message}");
    }
}

#[test]
fn every_preset_is_valid_and_round_trips_through_json() {
    let names = ModelConfig::preset_names();
    assert!(names.len() >= 8);
    for name in names {
        let config = ModelConfig::preset(name).unwrap();
        config.validate().unwrap();
        assert_eq!(ModelConfig::from_json_str(&config.to_json()).unwrap(), config, "{name}");
        assert_eq!(ModelConfig::load(name).unwrap(), config, "{name}");
        let path = write_config(&format!("preset-{name}"), &config.to_json());
        assert_eq!(ModelConfig::load(path.to_str().unwrap()).unwrap(), config, "{name}");
    }
}

/// The config fuzzer found a temperature whose shortest decimal form read
/// back one ulp off: configs are written and read with correctly rounded
/// floats, so a saved config is the config.
#[test]
fn every_float_reads_back_from_its_own_json_bit_for_bit() {
    let mut config = ModelConfig::preset("ViT-B-16").unwrap();
    for value in [2.6592600369344446, 2.659260036934445, 0.1 + 0.2, f64::MIN_POSITIVE, 4.0 - f64::EPSILON] {
        config.init_logit_scale = value;
        config.vision_cfg.mlp_ratio = 1.0 + value;
        let back = ModelConfig::from_json_str(&config.to_json()).unwrap();
        assert_eq!(back.init_logit_scale.to_bits(), value.to_bits(), "{value:e}");
        assert_eq!(back.vision_cfg.mlp_ratio.to_bits(), (1.0 + value).to_bits(), "{value:e}");
    }
}

#[test]
fn open_clip_json_loads_with_open_clip_defaults() {
    let config = ModelConfig::from_json_str(VIT_B_16_JSON).unwrap();
    assert_eq!(config, ModelConfig::preset("ViT-B-16").unwrap());
    assert!(!config.quick_gelu);
    assert_eq!((config.vision_cfg.head_width, config.vision_cfg.mlp_ratio), (64, 4.0));
    assert_eq!(config.text_cfg.mlp_ratio, 4.0);

    let minimal = ModelConfig::from_json_str(r#"{"embed_dim": 512, "vision_cfg": {}, "text_cfg": {}}"#).unwrap();
    assert_eq!(minimal.vision_cfg, reclip_model::VisionConfig::default());
    assert_eq!(minimal.text_cfg, reclip_model::TextConfig::default());
    assert_eq!((minimal.vision_cfg.image_size, minimal.vision_cfg.patch_size), (224, 16));
    assert_eq!((minimal.text_cfg.context_length, minimal.text_cfg.vocab_size), (77, 49408));
}

#[test]
fn quick_gelu_presets_differ_only_in_the_activation() {
    for base in ["ViT-B-32", "ViT-B-16", "ViT-L-14"] {
        let plain = ModelConfig::preset(base).unwrap();
        let quick = ModelConfig::preset(&format!("{base}-quickgelu")).unwrap();
        assert!(quick.quick_gelu && !plain.quick_gelu);
        assert_eq!(ModelConfig { quick_gelu: false, ..quick }, plain);
    }
}

#[test]
fn unimplemented_open_clip_fields_load_at_their_defaults() {
    let config = load_edited("defaults", |doc| {
        doc["custom_text"] = false.into();
        doc["init_logit_bias"] = serde_json::Value::Null;
        doc["init_logit_scale"] = (1.0f64 / 0.07).ln().into();
        let vision = &mut doc["vision_cfg"];
        vision["patch_dropout"] = 0.into();
        vision["ls_init_value"] = serde_json::Value::Null;
        vision["pool_type"] = "tok".into();
        vision["attn_pooler_heads"] = 8.0.into();
        vision["timm_model_name"] = serde_json::Value::Null;
        let text = &mut doc["text_cfg"];
        text["pool_type"] = "argmax".into();
        text["proj_bias"] = false.into();
        text["hf_model_pretrained"] = true.into();
    })
    .unwrap();
    assert_eq!(config, ModelConfig::preset("ViT-B-16").unwrap());
}

#[test]
fn unknown_fields_are_named() {
    let message = error_message("unknown-top", |doc| doc["temperature"] = 0.07.into());
    assert_mentions(&message, &["unknown field `temperature`", "embed_dim, quick_gelu, init_logit_scale"]);

    let message = error_message("unknown-vision", |doc| doc["vision_cfg"]["patchsize"] = 16.into());
    assert_mentions(&message, &["unknown field `vision_cfg.patchsize`", "patch_size"]);

    let message = error_message("unknown-text", |doc| doc["text_cfg"]["context"] = 77.into());
    assert_mentions(&message, &["unknown field `text_cfg.context`", "context_length"]);
}

#[test]
fn unsupported_fields_at_other_values_are_refused() {
    let cases: [(&str, &str, serde_json::Value, &[&str]); 7] = [
        ("vision_cfg", "ls_init_value", 1e-5.into(), &["`vision_cfg.ls_init_value`", "layer scale", "null"]),
        ("vision_cfg", "attentional_pool", true.into(), &["`vision_cfg.attentional_pool` = true", "attentional"]),
        ("vision_cfg", "timm_model_name", "vit_base_patch16_224".into(), &["timm image towers"]),
        ("vision_cfg", "no_ln_pre", true.into(), &["`vision_cfg.no_ln_pre`", "LayerNorm"]),
        ("vision_cfg", "final_ln_after_pool", true.into(), &["`vision_cfg.final_ln_after_pool`"]),
        ("text_cfg", "proj_bias", true.into(), &["`text_cfg.proj_bias` = true", "bias on the text projection"]),
        ("text_cfg", "hf_model_name", "roberta-base".into(), &["`text_cfg.hf_model_name`", "Hugging Face"]),
    ];
    for (section, field, value, parts) in cases {
        let message = error_message(&format!("unsupported-{field}"), |doc| doc[section][field] = value);
        assert_mentions(&message, &["not supported"]);
        assert_mentions(&message, parts);
    }

    let message = error_message("unsupported-pool", |doc| doc["text_cfg"]["pool_type"] = "last".into());
    assert_mentions(&message, &["`text_cfg.pool_type` = \"last\"", "\"argmax\""]);
    let message =
        error_message("unsupported-resnet", |doc| doc["vision_cfg"]["layers"] = serde_json::json!([3, 4, 6, 3]));
    assert_mentions(&message, &["`vision_cfg.layers` = [3,4,6,3]", "ModifiedResNet"]);
}

#[test]
fn sizes_that_do_not_fit_are_refused() {
    let message = error_message("grid", |doc| doc["vision_cfg"]["image_size"] = 100.into());
    assert_mentions(&message, &["image size 100", "patch size 16"]);

    let message = error_message("head-width", |doc| doc["vision_cfg"]["head_width"] = 80.into());
    assert_mentions(&message, &["`vision_cfg.head_width` = 80", "vision_cfg.width = 768"]);

    let message = error_message("text-heads", |doc| doc["text_cfg"]["heads"] = 7.into());
    assert_mentions(&message, &["`text_cfg.heads` = 7", "text_cfg.width = 512"]);

    let message = error_message("zero-layers", |doc| doc["text_cfg"]["layers"] = 0.into());
    assert_mentions(&message, &["`text_cfg.layers` = 0", "at least 1"]);

    let message = error_message("mlp-ratio", |doc| doc["vision_cfg"]["mlp_ratio"] = 0.0.into());
    assert_mentions(&message, &["`vision_cfg.mlp_ratio` = 0"]);
}

#[test]
fn malformed_json_is_refused_with_its_location() {
    let message = error_message("type", |doc| doc["vision_cfg"]["width"] = "wide".into());
    assert_mentions(&message, &["`vision_cfg.width`", "invalid type"]);

    let message = error_message("missing", |doc| {
        doc.as_object_mut().unwrap().remove("embed_dim");
    });
    assert_mentions(&message, &["missing field `embed_dim`"]);

    let message = error_message("not-an-object", |doc| *doc = serde_json::json!([1, 2]));
    assert_mentions(&message, &["JSON object"]);

    let path = write_config("syntax", "{\"embed_dim\": 512,");
    let message = ModelConfig::from_json_file(&path).unwrap_err().to_string();
    assert_mentions(&message, &["reclip-model-syntax.json", "invalid JSON", "line 1"]);
}

#[test]
fn load_tells_paths_from_preset_names() {
    let message = ModelConfig::load("no/such/model.json").unwrap_err().to_string();
    assert_mentions(&message, &["cannot read model config no/such/model.json"]);

    let message = ModelConfig::load("ViT-B-17").unwrap_err().to_string();
    assert_mentions(&message, &["unknown model preset `ViT-B-17`", "ViT-B-16", "reclip-tiny", "reclip-small"]);
}

#[test]
fn derived_sizes() {
    let b16 = ModelConfig::preset("ViT-B-16").unwrap();
    let v = &b16.vision_cfg;
    assert_eq!((v.heads().unwrap(), v.mlp_width()), (12, 3072));
    assert_eq!((v.grid_size(224).unwrap(), v.tokens_per_image(224).unwrap()), (14, 197));
    // RECLIP's main phase: a ViT-B/16 sees 17 tokens at 64 px.
    assert_eq!(v.tokens_per_image(64).unwrap(), 17);
    let message = v.grid_size(72).unwrap_err().to_string();
    assert_mentions(&message, &["image size 72", "patch size 16"]);
    assert_eq!((b16.text_cfg.head_width().unwrap(), b16.text_cfg.mlp_width()), (64, 2048));

    let l14 = ModelConfig::preset("ViT-L-14").unwrap();
    assert_eq!((l14.vision_cfg.heads().unwrap(), l14.vision_cfg.tokens_per_image(336).unwrap()), (16, 577));

    let tiny = ModelConfig::preset("reclip-tiny").unwrap();
    assert_eq!(
        (tiny.vision_cfg.tokens_per_image(32).unwrap(), tiny.vision_cfg.tokens_per_image(80).unwrap()),
        (17, 101)
    );

    // open_clip truncates the MLP width: int(1664 * 4.9231) = 8192 in ViT-bigG-14.
    let big_g_mlp = reclip_model::VisionConfig { width: 1664, mlp_ratio: 4.9231, ..Default::default() };
    assert_eq!(big_g_mlp.mlp_width(), 8192);
}

/// Parameter counts against open_clip's published profile
/// (`docs/model_profile.csv`, see tests/flops.rs for the commit), in millions
/// to its two decimals: image tower, text tower, whole model.
#[test]
fn parameter_counts_match_open_clip() {
    let rows: [(&str, usize, f64, f64, f64); 6] = [
        ("ViT-B-32", 224, 87.85, 63.43, 151.28),
        ("ViT-B-32", 256, 87.86, 63.43, 151.29),
        ("ViT-B-16", 224, 86.19, 63.43, 149.62),
        ("ViT-L-14", 224, 303.97, 123.65, 427.62),
        ("ViT-L-14", 280, 304.11, 123.65, 427.76),
        ("ViT-L-14", 336, 304.29, 123.65, 427.94),
    ];
    let millions = |n: u64| format!("{:.2}", n as f64 / 1e6);
    for (name, image_size, image, text, total) in rows {
        let mut config = ModelConfig::preset(name).unwrap();
        config.vision_cfg.image_size = image_size;
        let row = format!("{name} at {image_size}");
        assert_eq!(millions(config.image_params().unwrap()), format!("{image:.2}"), "{row}: image");
        assert_eq!(millions(config.text_params().unwrap()), format!("{text:.2}"), "{row}: text");
        assert_eq!(millions(config.num_params().unwrap()), format!("{total:.2}"), "{row}: total");
    }
}

#[test]
fn act_kwargs_select_the_tanh_approximation_of_gelu_per_tower() {
    use reclip_mlp::Activation;
    let config = load_edited("act-kwargs", |doc| {
        doc["vision_cfg"]["act_kwargs"] = serde_json::json!({ "approximate": "tanh" });
    })
    .unwrap();
    assert_eq!((config.image_activation(), config.text_activation()), (Activation::GeluTanh, Activation::Gelu));
    assert_eq!(ModelConfig::from_json_str(&config.to_json()).unwrap(), config);
    // "none", no options and null are the exact GELU, open_clip's default.
    for kwargs in [serde_json::json!({ "approximate": "none" }), serde_json::json!({}), serde_json::Value::Null] {
        let config = load_edited("act-kwargs-exact", |doc| doc["text_cfg"]["act_kwargs"] = kwargs).unwrap();
        assert_eq!(config.text_activation(), Activation::Gelu);
    }
    let quick = ModelConfig::preset("ViT-B-16-quickgelu").unwrap();
    assert_eq!((quick.image_activation(), quick.text_activation()), (Activation::QuickGelu, Activation::QuickGelu));
}

#[test]
fn act_kwargs_reclip_does_not_read_are_refused() {
    let message = error_message("act-kwargs-option", |doc| {
        doc["vision_cfg"]["act_kwargs"] = serde_json::json!({ "inplace": true });
    });
    assert_mentions(&message, &["vision_cfg.act_kwargs", "inplace"]);
    let message = error_message("act-kwargs-value", |doc| {
        doc["text_cfg"]["act_kwargs"] = serde_json::json!({ "approximate": "sigmoid" });
    });
    assert_mentions(&message, &["text_cfg.act_kwargs.approximate", "sigmoid", "tanh"]);
    let message = error_message("act-kwargs-quickgelu", |doc| {
        doc["quick_gelu"] = true.into();
        doc["text_cfg"]["act_kwargs"] = serde_json::json!({ "approximate": "tanh" });
    });
    assert_mentions(&message, &["text_cfg.act_kwargs", "QuickGELU", "approximate"]);
}

#[test]
fn siglip_configs_load_with_their_logit_scale_and_bias() {
    let config = load_edited("siglip", |doc| {
        doc["init_logit_scale"] = 10f64.ln().into();
        doc["init_logit_bias"] = (-10.0).into();
    })
    .unwrap();
    assert_eq!((config.init_logit_scale, config.init_logit_bias), (10f64.ln(), Some(-10.0)));
    assert_eq!(ModelConfig::from_json_str(&config.to_json()).unwrap(), config);
    let message = error_message("siglip-scale", |doc| doc["init_logit_scale"] = 5.0.into());
    assert_mentions(&message, &["`init_logit_scale` = 5", "[0, ln 100]"]);
    let message = error_message("siglip-bias", |doc| doc["init_logit_bias"] = 1e9.into());
    assert_mentions(&message, &["`init_logit_bias`", "finite"]);
}

#[test]
fn patch_dropout_loads_and_is_checked() {
    let config = load_edited("patch-dropout", |doc| doc["vision_cfg"]["patch_dropout"] = 0.5.into()).unwrap();
    assert_eq!(config.vision_cfg.patch_dropout, 0.5);
    assert_eq!(ModelConfig::from_json_str(&config.to_json()).unwrap(), config);
    // (JSON has no NaN: serde_json writes it as null, a type error naming the field.)
    for bad in [1.0, -0.1] {
        let message = error_message("patch-dropout-bad", |doc| doc["vision_cfg"]["patch_dropout"] = bad.into());
        assert_mentions(&message, &["vision_cfg.patch_dropout", "below 1"]);
    }
}
