//! The FLOPs counter against open_clip's published profile, and its
//! elementwise convention on a model small enough to count by hand.

use reclip_model::{ConfigError, ModelConfig, TextConfig, VisionConfig, flops};

/// open_clip's `docs/model_profile.csv` (mlfoundations/open_clip at commit
/// 89fb801f1e6087880e951fc8354b8a2077b79c6d; the file last changed in
/// 29b90b8dde9125c479c0ddbab477310f665a0435): image, text and total GFLOPs of
/// one sample at the model's image size and 77 text tokens. ViT-B-32-256,
/// ViT-L-14-280 and ViT-L-14-336 are the same architectures at other sizes.
const PUBLISHED: [(&str, usize, f64, f64, f64); 9] = [
    ("ViT-B-32", 224, 8.82, 5.96, 14.78),
    ("ViT-B-32-quickgelu", 224, 8.82, 5.96, 14.78),
    ("ViT-B-32", 256, 11.5, 5.96, 17.46),
    ("ViT-B-16", 224, 35.13, 5.96, 41.09),
    ("ViT-B-16-quickgelu", 224, 35.13, 5.96, 41.09),
    ("ViT-L-14", 224, 162.03, 13.3, 175.33),
    ("ViT-L-14-quickgelu", 224, 162.03, 13.3, 175.33),
    ("ViT-L-14", 280, 258.49, 13.3, 271.79),
    ("ViT-L-14", 336, 381.92, 13.3, 395.22),
];

#[test]
fn matmul_flops_match_open_clips_published_profile() {
    let printed = |gflops: f64| format!("{gflops:.2}");
    for (name, image_size, image, text, total) in PUBLISHED {
        let config = ModelConfig::preset(name).unwrap();
        let report = flops::model(&config, image_size, 77).unwrap();
        let row = format!("{name} at {image_size}");
        assert_eq!(printed(report.image.forward_gflops), printed(image), "{row}: image");
        assert_eq!(printed(report.text.forward_gflops), printed(text), "{row}: text");
        assert_eq!(printed(report.forward_gflops), printed(total), "{row}: total");
    }
}

#[test]
fn report_totals_are_consistent() {
    let config = ModelConfig::preset("ViT-B-16").unwrap();
    let report = flops::at_config_sizes(&config).unwrap();
    assert_eq!((report.image_size, report.text_length), (224, 77));
    assert_eq!((report.image.tokens, report.text.tokens), (197, 77));
    for tower in [report.image, report.text] {
        let components: u64 = tower.matmul.components().iter().map(|(_, f)| f).sum();
        assert_eq!(components, tower.matmul.total());
        assert_eq!(tower.forward_gflops, tower.matmul.total() as f64 / 1e9);
        assert_eq!(tower.training_gflops, 3.0 * tower.matmul.total() as f64 / 1e9);
        assert_eq!(tower.training_elementwise_gflops, 3.0 * tower.elementwise.total() as f64 / 1e9);
    }
    assert_eq!(report.text.matmul.patch_embed, 0);
    assert!((report.training_gflops - 3.0 * report.forward_gflops).abs() < 1e-9);

    let json = serde_json::to_value(report).unwrap();
    assert!(json["image"]["matmul"]["attention_products"].as_u64().unwrap() > 0);
    assert!(json["text"]["elementwise"]["layer_norm"].as_u64().unwrap() > 0);
}

/// A 4 px image in 2 px patches (5 tokens), width 4 in 2 heads, MLP 16, one
/// layer, embedding 2; and a 3-token text tower of the same widths.
fn toy() -> ModelConfig {
    ModelConfig {
        embed_dim: 2,
        quick_gelu: false,
        init_logit_scale: reclip_model::config::CLIP_INIT_LOGIT_SCALE,
        init_logit_bias: None,
        vision_cfg: VisionConfig {
            image_size: 4,
            layers: 1,
            width: 4,
            head_width: 2,
            mlp_ratio: 4.0,
            patch_size: 2,
            act_kwargs: None,
            patch_dropout: 0.0,
        },
        text_cfg: TextConfig {
            context_length: 3,
            vocab_size: 10,
            width: 4,
            heads: 2,
            layers: 1,
            mlp_ratio: 4.0,
            act_kwargs: None,
        },
    }
}

#[test]
fn image_tower_counted_by_hand() {
    let image = flops::image_tower(&toy(), 4).unwrap();
    let m = &image.matmul;
    assert_eq!(image.tokens, 5);
    // 4 patches, each a 12 → 4 product.
    assert_eq!(m.patch_embed, 2 * 4 * 12 * 4);
    // q, k, v and out: 4 products of 4 → 4 per token.
    assert_eq!(m.attention_projections, 2 * 5 * 4 * 16);
    // QKᵀ and AV: 5×5 scores, each a dot product over the 4 channels.
    assert_eq!(m.attention_products, 2 * 2 * 25 * 4);
    assert_eq!(m.mlp, 2 * 2 * 5 * 4 * 16);
    assert_eq!(m.projection, 2 * 4 * 2);

    let e = &image.elementwise;
    // Two per block, ln_pre and ln_post, on 5 tokens × 4.
    assert_eq!(e.layer_norm, 4 * 7 * 20);
    // The scale on 20 query elements, softmax on 2 heads × 25 scores.
    assert_eq!(e.attention_softmax, 20 + 5 * 50);
    assert_eq!(e.activation, 5 * 5 * 16);
    // Biases of q, k, v (12), out (4), fc (16), proj (4) per token.
    assert_eq!(e.bias, 5 * 36);
    // Two residual adds and the position embedding.
    assert_eq!(e.additions, 3 * 20);
}

#[test]
fn text_tower_counted_by_hand() {
    let text = flops::text_tower(&toy(), 3).unwrap();
    let m = &text.matmul;
    assert_eq!((text.tokens, m.patch_embed), (3, 0));
    assert_eq!(m.attention_projections, 2 * 3 * 4 * 16);
    assert_eq!(m.attention_products, 2 * 2 * 9 * 4);
    assert_eq!(m.mlp, 2 * 2 * 3 * 4 * 16);
    assert_eq!(m.projection, 2 * 4 * 2);

    let e = &text.elementwise;
    // Two per block and ln_final.
    assert_eq!(e.layer_norm, 3 * 7 * 12);
    // Softmax and the causal mask on 2 heads × 9 scores.
    assert_eq!(e.attention_softmax, 12 + 6 * 18);
    assert_eq!(e.activation, 5 * 3 * 16);
    assert_eq!(e.bias, 3 * 36);
    assert_eq!(e.additions, 3 * 12);

    // Shorter captions: linear parts shrink linearly, attention products quadratically.
    let one = flops::text_tower(&toy(), 1).unwrap();
    assert_eq!(one.matmul.mlp * 3, m.mlp);
    assert_eq!(one.matmul.attention_products * 9, m.attention_products);
    assert_eq!(one.matmul.projection, m.projection);
}

#[test]
fn sizes_the_towers_cannot_take_are_refused() {
    let config = ModelConfig::preset("ViT-B-16").unwrap();
    assert!(matches!(
        flops::image_tower(&config, 100),
        Err(ConfigError::PatchGrid { image_size: 100, patch_size: 16 })
    ));
    for length in [0, 78] {
        let message = flops::text_tower(&config, length).unwrap_err().to_string();
        assert!(message.contains(&format!("text length {length}")) && message.contains("1..=77"), "{message}");
    }
    let report = flops::model(&config, 64, 77).unwrap();
    assert_eq!(report.image.tokens, 17);
}

/// reclip-tiny is sized for `reclip train` on a 2-core CPU in minutes: the
/// main phase at 32 px, the finetune at its own 80 px (ModelConfig::preset
/// documents the figures).
#[test]
fn reclip_tiny_stays_within_its_cpu_budget() {
    let tiny = ModelConfig::preset("reclip-tiny").unwrap();
    let finetune = flops::at_config_sizes(&tiny).unwrap();
    let main = flops::model(&tiny, 32, 24).unwrap();
    assert_eq!(finetune.image_size, 80);
    assert!(main.training_gflops < 0.035, "{}", main.training_gflops);
    assert!(finetune.training_gflops < 0.14, "{}", finetune.training_gflops);
    assert!(finetune.training_gflops > 4.0 * main.training_gflops);
}

/// FLIP at 50%: ViT-B/16 at 224 px keeps 98 of 196 patches, so its
/// transformer sees 99 tokens while the patch embedding still covers all.
#[test]
fn patch_dropout_counts_the_tokens_kept() {
    let config = ModelConfig::preset("ViT-B-16").unwrap();
    let full = flops::image_tower(&config, 224).unwrap();
    let dropped = flops::image_tower_dropping(&config, 224, 0.5).unwrap();
    assert_eq!((full.tokens, dropped.tokens), (197, 99));
    assert_eq!(dropped.matmul.patch_embed, full.matmul.patch_embed);
    assert_eq!(dropped.matmul.projection, full.matmul.projection);
    // The MLP and the projections are linear in the tokens.
    assert_eq!(dropped.matmul.mlp * 197, full.matmul.mlp * 99);
    assert_eq!(dropped.matmul.attention_projections * 197, full.matmul.attention_projections * 99);
    // Attention's products are quadratic: 99² against 197².
    assert_eq!(dropped.matmul.attention_products * 197 * 197, full.matmul.attention_products * 99 * 99);
    assert!(dropped.forward_gflops < 0.51 * full.forward_gflops, "{}", dropped.forward_gflops);
    assert_eq!(flops::image_tower_dropping(&config, 224, 0.0).unwrap(), full);
    let report = flops::model_dropping(&config, 224, 77, 0.75).unwrap();
    assert_eq!((report.patch_dropout, report.image.tokens), (0.75, 50));
    assert_eq!(report.text, flops::model(&config, 224, 77).unwrap().text);
}
