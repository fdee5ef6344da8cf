//! safetensors files: the model's weights under open_clip's state-dict names
//! (so that open_clip loads ours and we load open_clip's), and the training
//! state beside them. Every write is atomic: a temporary file in the same
//! folder, synced, then renamed over the target.

use half::{bf16, f16};
use reclip_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
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
    let bytes = safetensors::serialize(views, metadata)
        .map_err(|e| CheckpointError::Format { path: path.to_path_buf(), msg: e.to_string() })?;
    reclip_core::fs::write_atomic(path, &bytes).map_err(|e| CheckpointError::Io { path: e.path, error: e.error })
}

/// Loads every tensor to the CPU: f32, bf16, f64, u32 as themselves; f16 as
/// f32; i64/i32 (token ids in open_clip fixtures) as u32 when non-negative.
pub fn load(path: &Path) -> Result<StateDict, CheckpointError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let format = |msg: String| CheckpointError::Format { path: path.to_path_buf(), msg };
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| format(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let mut tensors = Vec::new();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    for name in names {
        let view = st.tensor(&name).map_err(|e| format(e.to_string()))?;
        let bad = |msg: String| CheckpointError::Tensor { path: path.to_path_buf(), name: name.clone(), msg };
        let dims = view.shape().to_vec();
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

