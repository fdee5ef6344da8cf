//! safetensors checkpoints: a file either fails to load or loads, and a model
//! built from it (with the config passed in, or the one it carries) encodes
//! an image and a caption to one feature row each.

use super::Verdict;
use crate::{json, scratch};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use reclip_autograd::Tape;
use reclip_core::{DType, Device, Tensor};
use reclip_model::clip::CONFIG_KEY;
use reclip_model::{Clip, ModelConfig, checkpoint};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::Value;
use std::collections::HashMap;

/// A model small enough that its checkpoint is a few kilobytes (CLIP's 49408-token
/// vocabulary alone would make it megabytes), with every tensor kind CLIP has.
const TINY_JSON: &str = r#"{
  "embed_dim": 8,
  "vision_cfg": {"image_size": 8, "layers": 1, "width": 8, "head_width": 4, "mlp_ratio": 1.0, "patch_size": 4},
  "text_cfg": {"context_length": 4, "vocab_size": 16, "width": 8, "heads": 2, "layers": 1, "mlp_ratio": 1.5}
}"#;

/// A config a checkpoint carries is built only up to this many parameters:
/// a mutated width can describe a model of any size, and building a big
/// model is legitimate work, not a loader bug.
const MAX_EMBEDDED_PARAMS: u64 = 1_000_000;

/// Images are encoded only up to this many tokens: a checkpoint's positional
/// embedding sets the image size, and attention grows with its square.
const MAX_IMAGE_TOKENS: usize = 1025;

pub fn tiny_config() -> ModelConfig {
    ModelConfig::from_json_str(TINY_JSON).expect("the tiny config is valid")
}

fn saved(save: impl FnOnce(&std::path::Path)) -> Vec<u8> {
    let path = scratch::dir().expect("a temporary folder for the seeds").join("seed.safetensors");
    save(&path);
    std::fs::read(&path).expect("the seed checkpoint was just written")
}

/// The tiny model as `Clip::save` writes it; its weights in bf16; and a file
/// of every other dtype the loader reads, without a config.
pub fn seeds() -> Vec<Vec<u8>> {
    let clip = Clip::new(tiny_config(), 1, &Device::Cpu).expect("the tiny model builds");
    let model = saved(|path| clip.save(path).expect("the tiny model saves"));
    let bf16 = saved(|path| {
        let tensors: Vec<(String, Tensor)> = clip
            .weights()
            .state_dict()
            .into_iter()
            .map(|(name, t)| (name, t.to_dtype(DType::BF16).expect("f32 casts to bf16")))
            .collect();
        let metadata = HashMap::from([(CONFIG_KEY.to_string(), clip.config().to_json())]);
        checkpoint::save(path, &tensors, metadata).expect("the bf16 model saves");
    });
    let f16: Vec<u8> = [0x3c00u16, 0xc000, 0x7bff].iter().flat_map(|h| h.to_le_bytes()).collect();
    let i64s: Vec<u8> = [0i64, 5, 49407].iter().flat_map(|i| i.to_le_bytes()).collect();
    let i32s: Vec<u8> = [1i32, 2, 3, 4].iter().flat_map(|i| i.to_le_bytes()).collect();
    let f64s: Vec<u8> = [0.5f64, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = |dtype, shape: Vec<usize>, data| TensorView::new(dtype, shape, data).expect("sizes match");
    let mixed = safetensors::serialize(
        [
            ("half", view(Dtype::F16, vec![3], &f16[..])),
            ("ids", view(Dtype::I64, vec![1, 3], &i64s[..])),
            ("ints", view(Dtype::I32, vec![2, 2], &i32s[..])),
            ("doubles", view(Dtype::F64, vec![2], &f64s[..])),
            ("scalar", view(Dtype::U32, vec![], &[7, 0, 0, 0][..])),
            ("empty", view(Dtype::F32, vec![0, 4], &[][..])),
        ],
        Some(HashMap::from([("format".to_string(), "pt".to_string())])),
    )
    .expect("the mixed file serializes");
    vec![model, bf16, mixed]
}

pub fn run(input: &[u8]) -> Result<Verdict, String> {
    let path = scratch::write("model.safetensors", input)?;
    let dict = match checkpoint::load(&path) {
        Ok(d) => d,
        Err(e) => return Ok(Verdict::Rejected(e.to_string())),
    };
    if let Ok(clip) = Clip::from_state_dict(&dict, &path, Some(tiny_config()), &Device::Cpu) {
        check_forward(&clip).map_err(|e| format!("loaded with the tiny config, but {e}"))?;
    }
    let embedded = dict.metadata.get(CONFIG_KEY).and_then(|json| ModelConfig::from_json_str(json).ok());
    if embedded.is_some_and(|c| c.num_params().is_ok_and(|n| n <= MAX_EMBEDDED_PARAMS))
        && let Ok(clip) = Clip::from_state_dict(&dict, &path, None, &Device::Cpu)
    {
        check_forward(&clip).map_err(|e| format!("loaded with its own config, but {e}"))?;
    }
    Ok(Verdict::Accepted)
}

/// A loaded model encodes one image at its image size and one caption to
/// one row of `embed_dim` features each.
fn check_forward(clip: &Clip) -> Result<(), String> {
    let config = clip.config();
    let size = clip.image_size();
    let tokens = config.vision_cfg.tokens_per_image(size).map_err(|e| format!("its image size is unusable: {e}"))?;
    let want = [1, config.embed_dim];
    let tape = Tape::no_grad();
    if tokens <= MAX_IMAGE_TOKENS {
        let images = Tensor::zeros([1, 3, size, size], DType::F32, &Device::Cpu).map_err(|e| e.to_string())?;
        let features = clip
            .encode_image(&tape, &images, DType::F32)
            .map_err(|e| format!("cannot encode a {size}-pixel image: {e}"))?;
        if features.tensor().dims() != want {
            return Err(format!("image features have shape {:?}, not {want:?}", features.tensor().dims()));
        }
    }
    let length = config.text_cfg.context_length.min(4);
    let vocab = config.text_cfg.vocab_size as u32;
    let ids: Vec<u32> = (0..length as u32).map(|i| (i * 7 + 1) % vocab).collect();
    let ids = Tensor::from_vec(ids, [1, length], &Device::Cpu).map_err(|e| e.to_string())?;
    let features =
        clip.encode_text(&tape, &ids, DType::F32).map_err(|e| format!("cannot encode {length} token ids: {e}"))?;
    if features.tensor().dims() != want {
        return Err(format!("text features have shape {:?}, not {want:?}", features.tensor().dims()));
    }
    Ok(())
}

/// Edits the JSON header (dtypes, shapes, offsets, metadata) as values, or
/// the model config the metadata carries, and writes the header back with
/// its length and padding; the tensor data is kept.
pub fn mutate_header(rng: &mut ChaCha8Rng, seed: &[u8]) -> Option<Vec<u8>> {
    let len = usize::try_from(u64::from_le_bytes(seed.get(..8)?.try_into().ok()?)).ok()?;
    let header_end = len.checked_add(8).filter(|&end| end <= seed.len())?;
    let mut header: Value = serde_json::from_slice(&seed[8..header_end]).ok()?;
    let embedded = rng.random_bool(0.5)
        && header
            .get_mut("__metadata__")
            .and_then(Value::as_object_mut)
            .is_some_and(|meta| json::mutate_embedded(rng, meta, CONFIG_KEY));
    if !embedded {
        for _ in 0..rng.random_range(1..=3) {
            json::mutate_value(rng, &mut header);
        }
    }
    let mut text = serde_json::to_vec(&header).ok()?;
    text.resize(text.len().next_multiple_of(8), b' ');
    Some([&(text.len() as u64).to_le_bytes()[..], &text, &seed[header_end..]].concat())
}

/// Sets the 8-byte header length to where the JSON header (and its space
/// padding) now ends, so that edits inside the header reach the parser.
pub fn repair(input: &mut [u8]) {
    if let Some(end) = json_object_end(input, 8) {
        let padded = end + input[end..].iter().take_while(|&&b| b == b' ').count();
        input[..8].copy_from_slice(&((padded - 8) as u64).to_le_bytes());
    }
}

/// The index just past the JSON object that starts at `start`, found by
/// matching braces outside strings.
fn json_object_end(bytes: &[u8], start: usize) -> Option<usize> {
    if bytes.get(start) != Some(&b'{') {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'{') => depth += 1,
            (false, _, b'}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_finds_the_header_the_serializer_wrote() {
        for seed in seeds() {
            let mut input = seed.clone();
            input[..8].fill(0xff);
            repair(&mut input);
            assert!(input[..8] == seed[..8], "header length {:?}, the serializer wrote {:?}", &input[..8], &seed[..8]);
        }
    }
}
