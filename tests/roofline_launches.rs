//! `reclip speed --roofline` lists the launches of one training step; this
//! holds the list to what a step really issues: one bf16 step of a small
//! model on the emulator, its launches counted by kernel name (GEMMs, device
//! copies, memsets and uploads by kind), against the table for the same
//! model and shapes; with the exact GELU (its kernels between the GEMMs) and
//! with its tanh approximation (in the GEMMs' epilogues), and with SigLIP's
//! sigmoid loss.

mod common;

use common::emulated::{Counting, GEMM, UPLOAD, batch_of};
use reclip::core::DType;
use reclip::model::roofline::{Kind, training_step};
use reclip::model::{ActKwargs, Clip, GeluApproximation, ModelConfig};
use reclip::train::{AdamW, AdamWConfig, train_step};
use std::collections::{BTreeMap, BTreeSet};

// Two blocks a tower, widths whose rows take the kernels' 16-byte forms, as
// ViT-B-16's do.
const MODEL: &str = r#"{
  "embed_dim": 32,
  "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32, "mlp_ratio": 4.0},
  "text_cfg": {"context_length": 16, "vocab_size": 96, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 4.0}
}"#;
const BATCH: usize = 4;
const TEXT_LEN: usize = 16;
const IMAGE: usize = 32;

#[test]
fn the_roofline_lists_the_launches_a_bf16_step_makes() {
    check(ModelConfig::from_json_str(MODEL).unwrap());
}

#[test]
fn the_roofline_lists_the_launches_of_a_step_with_gelu_in_the_gemms() {
    let mut config = ModelConfig::from_json_str(MODEL).unwrap();
    let tanh = Some(ActKwargs { approximate: GeluApproximation::Tanh });
    (config.vision_cfg.act_kwargs, config.text_cfg.act_kwargs) = (tanh, tanh);
    check(config);
}

#[test]
fn the_roofline_lists_the_launches_of_a_siglip_step() {
    let config = ModelConfig::from_json_str(MODEL).unwrap();
    check(ModelConfig { init_logit_bias: Some(-10.0), ..config });
}

fn check(config: ModelConfig) {
    let (device, counting) = Counting::device(4, false);
    let clip = Clip::new(config.clone(), 3, &device).unwrap();
    let mut optimizer = AdamW::new(&clip.params(), AdamWConfig::default()).unwrap();
    let (images, ids) = batch_of(BATCH, TEXT_LEN, IMAGE, 1);
    // The first step also builds the optimizer's table: the table is of a
    // steady-state step.
    train_step(&clip, &mut optimizer, &images, &ids, DType::BF16, 1e-3, None).unwrap();
    counting.clear();
    train_step(&clip, &mut optimizer, &images, &ids, DType::BF16, 1e-3, None).unwrap();
    let got = counting.counts();

    let table = training_step(&config, IMAGE, BATCH, TEXT_LEN).unwrap();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for row in &table.rows {
        let name = match row.kind {
            Kind::Gemm => GEMM.to_string(),
            Kind::Upload => UPLOAD.to_string(),
            _ => row.kernel.clone(),
        };
        *want.entry(name).or_default() += row.count;
    }
    let differ: Vec<String> = want
        .keys()
        .chain(got.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| format!("{k}: table {:?}, step {:?}", want.get(k), got.get(k)))
        .collect();
    assert!(differ.is_empty(), "the roofline and a real step differ:\n{}", differ.join("\n"));
}
