//! Model configs in open_clip's JSON schema: a config either is refused or
//! validates, writes back to JSON that reads back unchanged, and has a
//! parameter count and FLOPs at its own and other sizes.

use super::Verdict;
use reclip_model::{ConfigError, ModelConfig, flops};

/// open_clip's ViT-B-16 file as its schema spells it (defaults left out),
/// and one that spells out unimplemented fields at their defaults.
const OPEN_CLIP_JSONS: &[&str] = &[
    r#"{"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}}"#,
    r#"{"embed_dim": 64, "quick_gelu": true, "init_logit_scale": 2.659260036932778, "custom_text": false,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8,
                       "mlp_ratio": 2.5, "ls_init_value": null, "patch_dropout": 0.0, "pool_type": "tok"},
        "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 48, "heads": 3, "layers": 1,
                     "mlp_ratio": 4, "pad_id": 0, "text_arch": "clip", "norm_kwargs": null}}"#,
];

pub fn seeds() -> Vec<Vec<u8>> {
    let presets = ModelConfig::preset_names()
        .into_iter()
        .map(|name| ModelConfig::preset(name).expect("the preset names are presets").to_json().into_bytes());
    let own = std::iter::once(super::checkpoint::tiny_config().to_json().into_bytes());
    presets.chain(own).chain(OPEN_CLIP_JSONS.iter().map(|s| s.as_bytes().to_vec())).collect()
}

pub fn run(input: &[u8]) -> Result<Verdict, String> {
    let json = String::from_utf8_lossy(input);
    let config = match ModelConfig::from_json_str(&json) {
        Ok(c) => c,
        Err(e) => return Ok(Verdict::Rejected(e.to_string())),
    };
    config.validate().map_err(|e| format!("parsed, then failed validation: {e}"))?;
    match ModelConfig::from_json_str(&config.to_json()) {
        Ok(back) if back == config => {}
        Ok(back) => return Err(format!("read back from its JSON as {back:?}, not {config:?}")),
        Err(e) => return Err(format!("its own JSON is refused: {e}")),
    }
    config.num_params().map_err(|e| format!("a valid config has no parameter count: {e}"))?;
    // FLOPs of a config near several ceilings may exceed 64 bits: an
    // overflow error is the right answer there, any other error is not.
    match flops::at_config_sizes(&config) {
        Ok(_) | Err(ConfigError::Overflow { .. }) => {}
        Err(e) => return Err(format!("a valid config has no FLOPs at its sizes: {e}")),
    }
    // Other sizes: RECLIP trains at several; errors are fine, panics are not.
    let patch = config.vision_cfg.patch_size;
    for image_size in [
        patch,
        patch.saturating_mul(2),
        config.vision_cfg.image_size / 2,
        config.vision_cfg.image_size.saturating_add(1),
    ] {
        let _ = flops::image_tower(&config, image_size);
    }
    for text_length in [0, 1, config.text_cfg.context_length / 2, config.text_cfg.context_length.saturating_add(1)] {
        let _ = flops::text_tower(&config, text_length);
    }
    Ok(Verdict::Accepted)
}
