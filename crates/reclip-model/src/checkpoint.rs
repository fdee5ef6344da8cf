//! safetensors files: the model's weights under open_clip's state-dict names
//! (so that open_clip loads ours and we load open_clip's), and the training
//! state beside them. Every write is atomic: a temporary file in the same
//! folder, synced, then renamed over the target.

use crate::finite::NonFinite;
use crate::memory::human_bytes;
use half::{bf16, f16};
use reclip_core::fs::OpenRefusal;
use reclip_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    // Not `source`: the message already holds the I/O error, and a chained
    // source would print it twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: not a valid safetensors file: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("{path}: tensor {name}: {msg}")]
    Tensor { path: PathBuf, name: String, msg: String },
    #[error("{path} is {kind}, not a checkpoint file")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error(
        "{path}: the file is {}, more than the {} of memory available to load it",
        human_bytes(*size),
        human_bytes(*available)
    )]
    TooLarge { path: PathBuf, size: u64, available: u64 },
    /// A tensor the model would load holding NaN or ±inf.
    #[error("{path}: tensor {name} holds {found}")]
    NonFinite { path: PathBuf, name: String, found: NonFinite },
    /// Every missing, unexpected or mis-shaped tensor is in `problems`; the
    /// message, one line, names the first few.
    #[error("{path}: the checkpoint does not fit the model: {}", summary(problems))]
    Mismatch { path: PathBuf, problems: Vec<String> },
    #[error("{0}")]
    Device(#[from] reclip_core::Error),
}

/// Named tensors and string metadata, as stored in a safetensors file.
pub struct StateDict {
    pub tensors: Vec<(String, Tensor)>,
    pub metadata: HashMap<String, String>,
}

impl StateDict {
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

fn summary(problems: &[String]) -> String {
    const SHOWN: usize = 3;
    let head = problems[..problems.len().min(SHOWN)].join("; ");
    match problems.len().saturating_sub(SHOWN) {
        0 => head,
        more => format!("{head}; and {more} more"),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io { path: path.to_path_buf(), error }
}

/// Saves tensors (any device; f32, bf16 and f64 as themselves, u32 as u32).
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let mut host: Vec<(String, Tensor)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        host.push((name.clone(), t.to_device(&Device::Cpu)?.contiguous()?));
    }
    let mut views = Vec::with_capacity(host.len());
    for (name, t) in &host {
        let dtype = match t.dtype() {
            DType::F32 => Dtype::F32,
            DType::BF16 => Dtype::BF16,
            DType::F64 => Dtype::F64,
            DType::U32 => Dtype::U32,
        };
        let size = t.dtype().size_in_bytes();
        let start = t.layout().offset() * size;
        let bytes = &t.cpu_storage("save")?.as_bytes()[start..start + t.elem_count() * size];
        let view = TensorView::new(dtype, t.dims().to_vec(), bytes).map_err(|e| CheckpointError::Tensor {
            path: path.to_path_buf(),
            name: name.clone(),
            msg: e.to_string(),
        })?;
        views.push((name.clone(), view));
    }
    let metadata = (!metadata.is_empty()).then_some(metadata);
    let format = |msg: String| CheckpointError::Format { path: path.to_path_buf(), msg };
    let bytes = safetensors::serialize(views, metadata).map_err(|e| format(e.to_string()))?;
    let bytes = with_sorted_metadata(bytes).map_err(format)?;
    reclip_core::fs::write_atomic(path, &bytes).map_err(|e| CheckpointError::Io { path: e.path, error: e.error })
}

/// A serialized safetensors file with its metadata in key order. The crate
/// writes the metadata from a `HashMap`, whose order changes from process to
/// process; sorted, a checkpoint's bytes depend on what it holds alone.
fn with_sorted_metadata(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    const ALIGN: usize = 8;
    let len = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let Some(header) = len.and_then(|n| bytes.get(8..8 + n)) else {
        return Err("the serialized header is truncated".into());
    };
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| e.to_string())?;
    let Some(serde_json::Value::Object(metadata)) = header.remove("__metadata__") else {
        return Ok(bytes);
    };
    let sorted: std::collections::BTreeMap<_, _> = metadata.into_iter().collect();
    let mut out = serde_json::Map::new();
    out.insert("__metadata__".into(), serde_json::Value::Object(sorted.into_iter().collect()));
    out.extend(header);
    let mut json = serde_json::to_vec(&out).map_err(|e| e.to_string())?;
    // Padded with spaces, as the crate pads, so that the data stays aligned.
    json.resize(json.len().next_multiple_of(ALIGN), b' ');
    let data = &bytes[8 + len.expect("read above")..];
    Ok([&(json.len() as u64).to_le_bytes()[..], &json, data].concat())
}

/// Loads every tensor to the CPU: f32, bf16, f64, u32 as themselves; f16 as
/// f32; i64/i32 (token ids in open_clip fixtures) as u32 when non-negative.
/// The path must name a regular file no larger than the host's memory.
pub fn load(path: &Path) -> Result<StateDict, CheckpointError> {
    let bytes = read_whole(path)?;
    let format = |msg: String| CheckpointError::Format { path: path.to_path_buf(), msg };
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| match mis_sized_tensor(&bytes) {
        Some((name, msg)) => CheckpointError::Tensor { path: path.to_path_buf(), name, msg },
        None => format(e.to_string()),
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let mut tensors = Vec::new();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    for name in names {
        let view = st.tensor(&name).map_err(|e| format(e.to_string()))?;
        let bad = |msg: String| CheckpointError::Tensor { path: path.to_path_buf(), name: name.clone(), msg };
        let dims = view.shape().to_vec();
        // An empty tensor's other dimensions may be anything; their strides must still fit.
        if dims.iter().filter(|&&d| d > 0).try_fold(1usize, |n, &d| n.checked_mul(d)).is_none() {
            return Err(bad(format!("shape {dims:?} is too large to address")));
        }
        let data = view.data();
        let t = match view.dtype() {
            Dtype::F32 => Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, f32>(data), dims, &Device::Cpu),
            Dtype::BF16 => Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, bf16>(data), dims, &Device::Cpu),
            Dtype::F64 => Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, f64>(data), dims, &Device::Cpu),
            Dtype::U32 => Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, u32>(data), dims, &Device::Cpu),
            Dtype::F16 => {
                let v: Vec<f32> = bytemuck::pod_collect_to_vec::<u8, f16>(data).iter().map(|h| h.to_f32()).collect();
                Tensor::from_vec(v, dims, &Device::Cpu)
            }
            Dtype::I64 | Dtype::I32 => {
                let v: Vec<i64> = if view.dtype() == Dtype::I64 {
                    bytemuck::pod_collect_to_vec::<u8, i64>(data)
                } else {
                    bytemuck::pod_collect_to_vec::<u8, i32>(data).into_iter().map(i64::from).collect()
                };
                let ids = v
                    .iter()
                    .map(|&x| u32::try_from(x).map_err(|_| bad(format!("integer {x} does not fit an index"))))
                    .collect::<Result<Vec<u32>, _>>()?;
                Tensor::from_vec(ids, dims, &Device::Cpu)
            }
            other => return Err(bad(format!("dtype {other:?} is not supported"))),
        }
        .map_err(|e| bad(e.to_string()))?;
        tensors.push((name, t));
    }
    let metadata = meta.metadata().clone().unwrap_or_default();
    Ok(StateDict { tensors, metadata })
}

/// The file's bytes, once it is known to be a regular file (opening a FIFO
/// would block, reading a device might never end) whose size fits in the
/// host's memory (loading holds the file and the tensors decoded from it,
/// so this refuses only what surely cannot load).
fn read_whole(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let available = Device::Cpu.memory_bytes().unwrap_or(u64::MAX);
    let (file, size) = reclip_core::fs::open_regular(path, available).map_err(|refusal| match refusal {
        OpenRefusal::Io(e) => io(path)(e),
        OpenRefusal::NotRegular(kind) => CheckpointError::NotAFile { path: path.to_path_buf(), kind },
        OpenRefusal::TooLarge { len } => CheckpointError::TooLarge { path: path.to_path_buf(), size: len, available },
    })?;
    let mut bytes = Vec::new();
    // A failed reservation is an error here rather than an abort in the allocator.
    bytes
        .try_reserve_exact(usize::try_from(size).unwrap_or(usize::MAX))
        .map_err(|e| io(path)(std::io::Error::other(e)))?;
    // No further than the size checked, should the file grow meanwhile.
    file.into_inner().take(size).read_to_end(&mut bytes).map_err(io(path))?;
    Ok(bytes)
}

/// The first tensor (by name) whose shape does not match the bytes its
/// header entry gives it, with why: the safetensors crate refuses such a
/// header without naming the tensor.
fn mis_sized_tensor(bytes: &[u8]) -> Option<(String, String)> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let header = bytes.get(8..8usize.checked_add(usize::try_from(len).ok()?)?)?;
    let header: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    header.into_iter().filter(|(name, _)| name != "__metadata__").find_map(|(name, entry)| {
        let dtype = entry["dtype"].as_str()?;
        let element = match dtype {
            "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
            "U16" | "I16" | "F16" | "BF16" => 2,
            "U32" | "I32" | "F32" => 4,
            "U64" | "I64" | "F64" => 8,
            _ => return None,
        };
        let shape: Vec<u64> = entry["shape"].as_array()?.iter().map(|d| d.as_u64()).collect::<Option<_>>()?;
        let offsets: Vec<u64> = entry["data_offsets"].as_array()?.iter().map(|d| d.as_u64()).collect::<Option<_>>()?;
        let [start, end] = offsets[..] else { return None };
        let held = end.checked_sub(start)?;
        let needed = shape.iter().try_fold(element, |n: u64, &d| n.checked_mul(d));
        match needed {
            Some(n) if n == held => None,
            Some(n) => Some((name, format!("shape {shape:?} of {dtype} needs {n} bytes, its data holds {held}"))),
            None => Some((name, format!("shape {shape:?} of {dtype} is too large to hold"))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_the_same_bytes_whatever_its_metadata_order() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3], &Device::Cpu).unwrap();
        let tensors = [("b".to_string(), t.clone()), ("a".to_string(), t)];
        let keys: Vec<(String, String)> = (0..16).map(|i| (format!("key{i}"), format!("value {i}"))).collect();
        let mut files = Vec::new();
        for order in [keys.clone(), keys.into_iter().rev().collect()] {
            let path = dir.path().join(format!("{}.safetensors", files.len()));
            save(&path, &tensors, order.into_iter().collect()).unwrap();
            files.push(std::fs::read(&path).unwrap());
        }
        assert_eq!(files[0], files[1]);
        let back = load(&dir.path().join("0.safetensors")).unwrap();
        assert_eq!(back.metadata.len(), 16);
        assert_eq!(back.metadata["key3"], "value 3");
        assert_eq!(back.get("a").unwrap().to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0]);
    }
}
