//! Mutations of JSON documents as values, not bytes: byte edits mostly break
//! the syntax and stop at the JSON parser, while these keep it valid and
//! reach the schema and range checks behind it (extreme numbers, values of
//! the wrong type, missing and extra fields, whole sections swapped).

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

/// Field names to add: those the model config and the safetensors header
/// read, and some open_clip fields reclip only accepts at their defaults.
const FIELD_NAMES: &[&str] = &[
    "embed_dim",
    "quick_gelu",
    "vision_cfg",
    "text_cfg",
    "image_size",
    "layers",
    "width",
    "head_width",
    "mlp_ratio",
    "patch_size",
    "context_length",
    "vocab_size",
    "heads",
    "ls_init_value",
    "patch_dropout",
    "pool_type",
    "init_logit_scale",
    "timm_model_name",
    "text_arch",
    "pad_id",
    "dtype",
    "shape",
    "data_offsets",
    "__metadata__",
];

/// Numbers at and around the limits a reader might check or overflow on.
fn interesting_number(rng: &mut ChaCha8Rng, current: Option<f64>) -> Value {
    let near: [u64; 12] = [0, 1, 2, 3, 255, 1024, 4096, 65536, 1 << 20, 89_478_485, 1 << 32, 1 << 53];
    match rng.random_range(0..8) {
        0 => json!(near.choose(rng).expect("non-empty") + rng.random_range(0..=1)),
        1 => json!(*near.choose(rng).expect("non-empty") as i64 - 1),
        2 => json!(u64::MAX - rng.random_range(0..=1)),
        3 => json!(i64::MIN),
        4 => json!(*[1e308, -1e308, 1e-308, 0.5, -0.0, 1.5, 2.5].choose(rng).expect("non-empty")),
        5 => json!(current.unwrap_or(1.0) * 2.0),
        6 => json!(current.unwrap_or(1.0) + 1.0),
        _ => json!(current.unwrap_or(1.0) - 1.0),
    }
}

/// A new value for `current`: mostly an extreme number where it is a number
/// (sizes are what readers must bound), otherwise anything.
fn replacement(rng: &mut ChaCha8Rng, current: &Value) -> Value {
    if current.is_number() && rng.random_bool(0.8) {
        return interesting_number(rng, current.as_f64());
    }
    match rng.random_range(0..10) {
        0..4 => interesting_number(rng, current.as_f64()),
        4 => Value::Null,
        5 => Value::Bool(rng.random()),
        6 => json!(*["", "tok", "F32", "BF16", "I64", "F16", "U8", "learnable", "12"].choose(rng).expect("non-empty")),
        7 => json!([]),
        8 => json!([interesting_number(rng, None), interesting_number(rng, None)]),
        _ => json!({}),
    }
}

/// Every value's JSON pointer (`""` is the whole document).
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                pointers(child, format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// One edit at a random place in `doc`.
pub fn mutate_value(rng: &mut ChaCha8Rng, doc: &mut Value) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let donor = doc.pointer(all.choose(rng).expect("the root is listed")).cloned().unwrap_or(Value::Null);
    let Some(target) = doc.pointer_mut(all.choose(rng).expect("the root is listed")) else { return };
    match (rng.random_range(0..4), target) {
        (0, Value::Object(map)) if !map.is_empty() => {
            let key = map.keys().nth(rng.random_range(0..map.len())).expect("in range").clone();
            map.remove(&key);
        }
        (1, Value::Object(map)) => {
            let key = FIELD_NAMES.choose(rng).expect("non-empty").to_string();
            let value = replacement(rng, &Value::Null);
            map.insert(key, value);
        }
        (1, Value::Array(items)) => items.push(interesting_number(rng, None)),
        (2, target) => *target = donor,
        (_, target) => *target = replacement(rng, target),
    }
}

/// One to four value edits of a JSON document; `None` if `bytes` is not JSON.
pub fn mutate_json(rng: &mut ChaCha8Rng, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut doc: Value = serde_json::from_slice(bytes).ok()?;
    for _ in 0..rng.random_range(1..=4) {
        mutate_value(rng, &mut doc);
    }
    let out = if rng.random_bool(0.5) { serde_json::to_vec(&doc) } else { serde_json::to_vec_pretty(&doc) };
    out.ok()
}

/// [`mutate_json`] on a JSON document held as a string inside an object
/// (a checkpoint's model config in its metadata), at `key` of `map`.
pub fn mutate_embedded(rng: &mut ChaCha8Rng, map: &mut Map<String, Value>, key: &str) -> bool {
    let Some(Value::String(text)) = map.get(key) else { return false };
    let Some(mutated) = mutate_json(rng, text.as_bytes()) else { return false };
    map.insert(key.to_string(), Value::String(String::from_utf8_lossy(&mutated).into_owned()));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutated_documents_stay_json_and_differ() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let seed = br#"{"a": 1, "b": {"c": [1, 2], "d": "x"}}"#;
        let original: Value = serde_json::from_slice(seed).unwrap();
        let mut changed = 0;
        for _ in 0..100 {
            let out = mutate_json(&mut rng, seed).expect("the seed is JSON");
            let doc: Value = serde_json::from_slice(&out).expect("the output is JSON");
            changed += usize::from(doc != original);
        }
        assert!(changed > 80, "only {changed} of 100 documents changed");
        assert_eq!(mutate_json(&mut rng, b"{not json"), None);
    }
}
