//! The fields of open_clip's config schema that select architecture reclip does
//! not build. A config may carry them at open_clip's default (they are then
//! dropped: the model is the same), never at any other value; a field in
//! neither this table nor reclip's structs is a typo or a newer schema, and is
//! refused too. The names and defaults follow open_clip's `CLIP.__init__`,
//! `CLIPVisionCfg` and `CLIPTextCfg` (`src/open_clip/model.py`).

use serde_json::{Map, Value};

use super::{ConfigError, MODEL_FIELDS, TEXT_FIELDS, VISION_FIELDS};

/// open_clip's default for a field, as it reads in JSON.
#[derive(Clone, Copy)]
enum OpenClipDefault {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'static str),
}

impl OpenClipDefault {
    fn matches(self, value: &Value) -> bool {
        match (self, value) {
            (Self::Null, Value::Null) => true,
            (Self::Bool(b), Value::Bool(v)) => b == *v,
            // JSON does not tell 0 from 0.0; open_clip (Python) does not either.
            (Self::Int(n), Value::Number(v)) => v.as_f64() == Some(n as f64),
            (Self::Float(x), Value::Number(v)) => v.as_f64() == Some(x),
            (Self::Text(s), Value::String(v)) => s == v,
            _ => false,
        }
    }

    fn to_json(self) -> String {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::from(b),
            Self::Int(n) => Value::from(n),
            Self::Float(x) => Value::from(x),
            Self::Text(s) => Value::from(s),
        }
        .to_string()
    }
}

struct Unimplemented {
    name: &'static str,
    default: OpenClipDefault,
    feature: &'static str,
}

const fn field(name: &'static str, default: OpenClipDefault, feature: &'static str) -> Unimplemented {
    Unimplemented { name, default, feature }
}

use OpenClipDefault::{Bool, Float, Int, Null, Text};

const MODEL: &[Unimplemented] = &[
    field("nonscalar_logit_scale", Bool(false), "a non-scalar logit scale"),
    field("custom_text", Bool(false), "open_clip's CustomTextCLIP module layout"),
    field("multimodal_cfg", Null, "CoCa's multimodal text decoder"),
    field("audio_cfg", Null, "audio towers"),
    field("audio_naflex_cfg", Null, "audio towers"),
    field("genlap_cfg", Null, "generative (GenLAP) heads"),
    field("genlip_cfg", Null, "generative (GenLIP) heads"),
];

/// Options of open_clip's transformer blocks, shared by both towers.
const BLOCK: &[Unimplemented] = &[
    field("ls_init_value", Null, "layer scale"),
    field("norm_kwargs", Null, "LayerNorm options"),
    field("output_tokens", Bool(false), "returning per-token outputs"),
    field("final_ln_after_pool", Bool(false), "the final LayerNorm after pooling"),
    field("block_type", Null, "custom attention blocks"),
    field("qk_norm", Bool(false), "query/key normalisation"),
    field("scaled_cosine_attn", Bool(false), "scaled cosine attention"),
    field("scale_heads", Bool(false), "per-head attention scales"),
    field("scale_attn_inner", Bool(false), "a LayerNorm inside attention"),
    field("scale_attn", Bool(false), "a LayerNorm after attention"),
    field("scale_fc", Bool(false), "a LayerNorm inside the MLP"),
];

const VISION: &[Unimplemented] = &[
    field("image_seq_len", Null, "an image sequence length override"),
    field("attentional_pool", Bool(false), "attentional pooling"),
    field("attn_pooler_queries", Int(256), "attentional pooling"),
    field("attn_pooler_heads", Int(8), "attentional pooling"),
    field("no_ln_pre", Bool(false), "an image tower without its pre-transformer LayerNorm"),
    field("pos_embed_type", Text("learnable"), "fixed sin-cos position embeddings"),
    field("pool_type", Text("tok"), "image pooling other than the class token"),
    field("timm_model_name", Null, "timm image towers"),
    field("timm_model_pretrained", Bool(false), "timm image towers"),
    field("timm_pool", Text("avg"), "timm image towers"),
    field("timm_proj", Text("linear"), "timm image towers"),
    field("timm_proj_bias", Bool(false), "timm image towers"),
    field("timm_drop", Float(0.0), "timm image towers"),
    field("timm_drop_path", Null, "timm image towers"),
    field("timm_model_kwargs", Null, "timm image towers"),
];

const TEXT: &[Unimplemented] = &[
    field("text_arch", Text("clip"), "the modern text tower"),
    field("variable_text", Bool(false), "variable-length text batches"),
    field("hf_tokenizer_name", Null, "tokenizers other than CLIP's BPE"),
    field("tokenizer_mode", Null, "tokenizers other than CLIP's BPE"),
    field("tokenizer_kwargs", Null, "tokenizers other than CLIP's BPE"),
    field("tokenizer_type", Text(""), "tokenizers other than CLIP's BPE"),
    field("tiktoken_name", Text("cl100k_base"), "tokenizers other than CLIP's BPE"),
    field("embed_cls", Bool(false), "a learned class token in the text tower"),
    field("pad_id", Int(0), "a padding token other than CLIP's (0)"),
    field("bos_id", Null, "token ids other than CLIP's BPE"),
    field("eos_id", Null, "token ids other than CLIP's BPE"),
    field("no_causal_mask", Bool(false), "bidirectional text attention"),
    field("pool_type", Text("argmax"), "text pooling other than at the end-of-text token"),
    field("proj_bias", Bool(false), "a bias on the text projection"),
    field("proj_type", Text("linear"), "text projections other than a linear map"),
    field("attention_mode", Text("causal"), "the modern text tower"),
    field("pos_embed", Text("rope"), "the modern text tower"),
    field("rope_temperature", Float(10000.0), "the modern text tower"),
    field("mlp_type", Text("swiglu"), "the modern text tower"),
    field("norm_type", Null, "the modern text tower"),
    field("norm_eps", Float(1e-6), "the modern text tower"),
    field("attn_gated", Bool(false), "the modern text tower"),
    field("pre_norm", Bool(false), "the modern text tower"),
    field("norm_placement", Text("pre"), "the modern text tower"),
    field("zero_init_residual", Bool(false), "the modern text tower"),
    field("reg_tokens", Int(0), "the modern text tower"),
    field("value_residual", Bool(false), "the modern text tower"),
    field("attention_bias", Null, "the modern text tower"),
    field("mlp_bias", Null, "the modern text tower"),
    field("gate_bias", Null, "the modern text tower"),
    field("hf_model_name", Null, "Hugging Face text towers"),
    field("hf_model_pretrained", Bool(true), "Hugging Face text towers"),
    field("hf_proj_type", Text("mlp"), "Hugging Face text towers"),
    field("hf_pooler_type", Text("mean_pooler"), "Hugging Face text towers"),
    field("hf_model_config", Null, "Hugging Face text towers"),
];

/// Checks every field of a parsed config document against reclip's structs and
/// the table above, and removes the unimplemented ones (all at their default by
/// then), leaving what the structs deserialize.
pub(super) fn strip_unimplemented(doc: &mut Value) -> Result<(), ConfigError> {
    let Value::Object(top) = doc else {
        return Err(ConfigError::Schema(format!("a model config is a JSON object, not `{doc}`")));
    };
    check_section(top, "", MODEL_FIELDS, &[MODEL])?;
    if let Some(Value::Object(vision)) = top.get_mut("vision_cfg") {
        if let Some(layers @ Value::Array(_)) = vision.get("layers") {
            return Err(ConfigError::Unsupported {
                field: "vision_cfg.layers".into(),
                value: shown(layers),
                feature: "open_clip's ModifiedResNet image tower (layers given per stage)",
                accepted: "an integer, the ViT's depth".into(),
            });
        }
        check_section(vision, "vision_cfg.", VISION_FIELDS, &[BLOCK, VISION])?;
    }
    if let Some(Value::Object(text)) = top.get_mut("text_cfg") {
        check_section(text, "text_cfg.", TEXT_FIELDS, &[BLOCK, TEXT])?;
    }
    Ok(())
}

fn check_section(
    section: &mut Map<String, Value>,
    prefix: &str,
    supported: &[&str],
    tables: &[&[Unimplemented]],
) -> Result<(), ConfigError> {
    let mut at_default = Vec::new();
    for (key, value) in section.iter() {
        if supported.contains(&key.as_str()) {
            continue;
        }
        let Some(field) = tables.iter().flat_map(|t| t.iter()).find(|f| f.name == key) else {
            return Err(ConfigError::UnknownField { field: format!("{prefix}{key}"), accepted: supported.join(", ") });
        };
        if !field.default.matches(value) {
            return Err(ConfigError::Unsupported {
                field: format!("{prefix}{key}"),
                value: shown(value),
                feature: field.feature,
                accepted: format!("{}, or leaving the field out", field.default.to_json()),
            });
        }
        at_default.push(key.clone());
    }
    for key in at_default {
        section.remove(&key);
    }
    Ok(())
}

/// A value as JSON, cut short: a whole unsupported section (an `audio_cfg`)
/// would drown the message.
fn shown(value: &Value) -> String {
    const MAX_CHARS: usize = 60;
    let json = value.to_string();
    if json.chars().count() <= MAX_CHARS {
        json
    } else {
        format!("{}…", json.chars().take(MAX_CHARS).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field in both a table and reclip's structs would be silently read as
    /// supported, whatever the table says.
    #[test]
    fn tables_do_not_overlap_the_structs() {
        for (supported, tables) in
            [(MODEL_FIELDS, &[MODEL][..]), (VISION_FIELDS, &[BLOCK, VISION][..]), (TEXT_FIELDS, &[BLOCK, TEXT][..])]
        {
            for f in tables.iter().flat_map(|t| t.iter()) {
                assert!(!supported.contains(&f.name), "{} is both supported and unimplemented", f.name);
            }
        }
    }

    #[test]
    fn numeric_defaults_ignore_the_json_number_kind() {
        assert!(Float(0.0).matches(&serde_json::json!(0)));
        assert!(Int(256).matches(&serde_json::json!(256.0)));
        assert!(!Float(0.0).matches(&serde_json::json!(0.5)));
        assert!(!Null.matches(&serde_json::json!(false)));
    }

    #[test]
    fn long_values_are_cut_short() {
        let section = serde_json::json!({ "bands": (0..100).collect::<Vec<_>>() });
        let message = shown(&section);
        assert_eq!(message.chars().count(), 61);
        assert!(message.starts_with("{\"bands\":[0,1,2") && message.ends_with('…'));
        assert_eq!(shown(&serde_json::json!(0.5)), "0.5");
    }
}
