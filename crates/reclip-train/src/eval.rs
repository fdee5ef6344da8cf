//! Zero-shot classification and image–text retrieval, as open_clip evaluates:
//! features normalised; a class's text embedding is the mean of its prompts'
//! normalised features, normalised again; accuracy is top-k of image·classᵀ;
//! retrieval ranks every caption for each image and every image for each
//! caption, one caption per image.

use reclip_autograd::Tape;
use reclip_core::{DType, Device, Result, Tensor};
use reclip_data::{BatchSpec, DataReport, Dataset, Loader, LoaderConfig, ZeroShotSet};
use reclip_model::clip::{Clip, normalize};
use reclip_tokenizer::ClipTokenizer;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ZeroShotResult {
    pub name: String,
    pub top1: f64,
    pub top5: f64,
    pub images: usize,
    pub classes: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetrievalResult {
    pub name: String,
    /// Recall@1, @5, @10 of the right caption among all, per image.
    pub image_to_text: [f64; 3],
    /// Recall@1, @5, @10 of the right image among all, per caption.
    pub text_to_image: [f64; 3],
    pub pairs: usize,
}

pub struct Evaluator<'a> {
    pub clip: &'a Clip,
    pub encoder: Arc<ClipTokenizer>,
    pub dtype: DType,
    pub batch_size: usize,
    pub image_size: usize,
    pub text_len: usize,
    pub workers: usize,
}

/// A dataset's features, as [`Evaluator::encode_dataset`] makes them.
struct Encoded {
    images: Tensor,
    /// Caption features, when asked for.
    texts: Option<Tensor>,
    /// The dataset index of each row.
    indices: Vec<usize>,
    data: DataReport,
}

/// How many of `scores`' rows rank their target column within the top k,
/// for k in `ks` (ties, and NaN scores of a model that overflowed, count
/// against the target).
fn recall_at(scores: &[f32], cols: usize, targets: &[usize], ks: &[usize]) -> Vec<usize> {
    let mut hits = vec![0; ks.len()];
    for (row, &t) in scores.chunks(cols).zip(targets) {
        let outranks = |s: f32| s.partial_cmp(&row[t]).is_none_or(|o| o.is_ge());
        let better = row.iter().enumerate().filter(|&(j, &s)| j != t && outranks(s)).count();
        for (h, &k) in hits.iter_mut().zip(ks) {
            if better < k {
                *h += 1;
            }
        }
    }
    hits
}

impl Evaluator<'_> {
    fn loader(&self, dataset: Arc<dyn Dataset>) -> reclip_data::Result<Loader> {
        let cfg = LoaderConfig { workers: self.workers, ..LoaderConfig::eval(self.batch_size) };
        Loader::new(dataset, self.encoder.clone(), cfg)
    }

    /// Normalised image and caption features of a whole dataset, with the
    /// dataset index of each row; bad samples are left out and reported.
    fn encode_dataset(&self, dataset: Arc<dyn Dataset>, with_text: bool) -> anyhow::Result<Encoded> {
        let mut loader = self.loader(dataset)?;
        let spec = BatchSpec { image_size: self.image_size, context_length: self.text_len };
        let tape = Tape::no_grad();
        let (mut images, mut texts, mut indices) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..loader.batches_per_epoch() {
            let batch = loader.next_batch(spec)?;
            if batch.is_empty() {
                continue;
            }
            let f = self.clip.encode_image(&tape, &batch.images, self.dtype)?;
            images.push(normalize(f.tensor())?.to_device(&Device::Cpu)?);
            if with_text {
                let t = self.clip.encode_text(&tape, &batch.tokens, self.dtype)?;
                texts.push(normalize(t.tensor())?.to_device(&Device::Cpu)?);
            }
            indices.extend(batch.indices);
        }
        let cat = |v: &[Tensor]| -> Result<Tensor> { Tensor::concat(&v.iter().collect::<Vec<_>>(), 0) };
        let texts = if with_text { Some(cat(&texts)?) } else { None };
        Ok(Encoded { images: cat(&images)?, texts, indices, data: loader.report() })
    }

    /// Normalised text features of `texts`.
    fn encode_texts(&self, texts: &[String]) -> Result<Tensor> {
        let tape = Tape::no_grad();
        let mut out = Vec::new();
        for chunk in texts.chunks(self.batch_size.max(1)) {
            let ids: Vec<u32> = chunk.iter().flat_map(|t| self.encoder.tokenize(t, self.text_len)).collect();
            let ids = Tensor::from_vec(ids, [chunk.len(), self.text_len], &Device::Cpu)?;
            let f = self.clip.encode_text(&tape, &ids, self.dtype)?;
            out.push(normalize(f.tensor())?.to_device(&Device::Cpu)?);
        }
        Tensor::concat(&out.iter().collect::<Vec<_>>(), 0)
    }

    /// Zero-shot accuracy on `set`, and what was wrong with its images.
    pub fn zero_shot(&self, set: &ZeroShotSet) -> anyhow::Result<(ZeroShotResult, DataReport)> {
        let classes: Vec<Tensor> = (0..set.num_classes())
            .map(|c| {
                let mean = self.encode_texts(&set.prompts(c))?.mean_dim(0, true)?;
                normalize(&mean)
            })
            .collect::<Result<_>>()?;
        let classes = Tensor::concat(&classes.iter().collect::<Vec<_>>(), 0)?;
        let Encoded { images, indices, data, .. } = self.encode_dataset(set.images.clone(), false)?;
        let scores = images.matmul(&classes.transpose(0, 1)?)?.to_vec_f32()?;
        let targets: Vec<usize> = indices.iter().map(|&i| set.labels[i]).collect();
        let hits = recall_at(&scores, set.num_classes(), &targets, &[1, 5]);
        let n = targets.len().max(1) as f64;
        let result = ZeroShotResult {
            name: set.name.clone(),
            top1: hits[0] as f64 / n,
            top5: hits[1] as f64 / n,
            images: targets.len(),
            classes: set.num_classes(),
        };
        Ok((result, data))
    }

    /// Retrieval recall on `dataset`, and what was wrong with its samples.
    pub fn retrieval(&self, name: &str, dataset: Arc<dyn Dataset>) -> anyhow::Result<(RetrievalResult, DataReport)> {
        let Encoded { images, texts, indices, data } = self.encode_dataset(dataset, true)?;
        let texts = texts.ok_or_else(|| anyhow::anyhow!("{name}: no caption features"))?;
        let n = indices.len();
        let targets: Vec<usize> = (0..n).collect();
        let i2t = images.matmul(&texts.transpose(0, 1)?)?.to_vec_f32()?;
        let t2i = texts.matmul(&images.transpose(0, 1)?)?.to_vec_f32()?;
        let ks = [1, 5, 10];
        let rate = |h: Vec<usize>| [0, 1, 2].map(|i| h[i] as f64 / n.max(1) as f64);
        let result = RetrievalResult {
            name: name.to_string(),
            image_to_text: rate(recall_at(&i2t, n, &targets, &ks)),
            text_to_image: rate(recall_at(&t2i, n, &targets, &ks)),
            pairs: n,
        };
        Ok((result, data))
    }
}

#[cfg(test)]
mod tests {
    use super::recall_at;

    #[test]
    fn recall_counts_ties_against_the_target() {
        // Row 0: target 1 is best. Row 1: target 0 ties with column 2.
        let scores = [0.1, 0.9, 0.3, 0.5, 0.2, 0.5];
        assert_eq!(recall_at(&scores, 3, &[1, 0], &[1, 2]), vec![1, 2]);
        // A NaN target ranks last; a NaN elsewhere ranks above the target.
        let nan = f32::NAN;
        assert_eq!(recall_at(&[nan, 0.1, 0.2, 0.5, nan, 0.1], 3, &[0, 0], &[1, 2]), vec![0, 1]);
    }
}
