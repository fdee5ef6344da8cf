mod common;

use common::mean_abs_diff;
use reclip_data::synthetic::{
    COLOURS, PlacedShape, SHAPES, SYNTHETIC_TEMPLATES, Scene, ShapeKind, SizeClass, render_scene,
};
use reclip_data::{Dataset, Rgb8Image, Synthetic, SyntheticConfig, View};

fn data(seed: u64) -> Synthetic {
    Synthetic::new(SyntheticConfig { seed, train_len: 1000, heldout_len: 100, crowded_percent: 30 })
}

/// Averages `factor` x `factor` blocks: what a pixel of a smaller rendering should hold.
fn box_downsample(img: &Rgb8Image, factor: usize) -> Vec<u8> {
    let size = img.width / factor;
    let mut out = Vec::with_capacity(size * size * 3);
    for y in 0..size {
        for x in 0..size {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..factor {
                    for dx in 0..factor {
                        sum += img.pixel(x * factor + dx, y * factor + dy)[c] as u32;
                    }
                }
                out.push((sum as f64 / (factor * factor) as f64).round() as u8);
            }
        }
    }
    out
}

#[test]
fn samples_are_deterministic_per_seed_and_index() {
    let (a, b) = (data(1).train(), data(1).train());
    for i in [0, 5, 999] {
        assert_eq!(a.load(i, &View::eval(24)).unwrap().image, b.load(i, &View::eval(24)).unwrap().image);
        assert_eq!(a.caption(i), b.caption(i));
    }
    assert_ne!(a.scene(0), a.scene(1));
    assert_ne!(a.scene(0), data(2).train().scene(0));
    assert_ne!(a.scene(0), data(1).heldout().scene(0), "held-out scenes are not training scenes");
}

#[test]
fn a_scene_looks_the_same_at_every_resolution() {
    let train = data(4).train();
    for i in 0..20 {
        let big = train.render(i, &View::eval(128));
        let small = train.render(i, &View::eval(32));
        let error = mean_abs_diff(&box_downsample(&big, 4), &small.pixels);
        assert!(error < 1.5, "scene {i}: 128 px shrunk to 32 px differs from 32 px by {error:.2}");
    }
}

#[test]
fn captions_name_the_colour_and_shape_of_every_shape() {
    let train = data(5).train();
    let mut phrasings = std::collections::HashSet::new();
    let mut counts = [0usize; 4];
    for i in 0..300 {
        let (scene, caption) = (train.scene(i), train.caption(i));
        counts[scene.shapes.len()] += 1;
        for s in &scene.shapes {
            let plural = format!("{} {}", s.colour_name(), s.kind.plural());
            let single = format!("{} {}", s.colour_name(), s.kind.name());
            assert!(caption.contains(&single) || caption.contains(&plural), "{caption:?} misses {single}");
        }
        let kinds: std::collections::HashSet<_> = scene.shapes.iter().map(|s| (s.colour, s.kind)).collect();
        if kinds.len() > 1 && !caption.contains(" and ") {
            panic!("{caption:?} does not list its shapes");
        }
        phrasings.insert(caption.split_whitespace().next().unwrap().to_string());
    }
    // 30% crowded scenes: half with two shapes, half with three (less those
    // that find no room for their last shape).
    assert!(counts[1] > 180 && counts[2] > 25 && counts[3] > 20, "shape counts {counts:?}");
    assert!(phrasings.len() >= 5, "captions start in only {phrasings:?}");
}

#[test]
fn class_sets_hold_balanced_single_shape_images() {
    let synthetic = data(6);
    let colour_shape = synthetic.colour_shape_classes(3);
    assert_eq!(colour_shape.num_classes(), COLOURS.len() * SHAPES.len());
    assert_eq!(colour_shape.images.len(), 3 * 48);
    assert_eq!(colour_shape.templates.len(), SYNTHETIC_TEMPLATES.len());
    assert_eq!(colour_shape.prompts(1)[0], "a photo of a red square.");
    let shapes = synthetic.shape_classes(4);
    assert_eq!(shapes.classnames, SHAPES.iter().map(|s| s.name()).collect::<Vec<_>>());
    let caption_of = |set: &reclip_data::ZeroShotSet, i| set.images.load(i, &View::eval(8)).unwrap().caption;
    for i in 0..colour_shape.images.len() {
        let label = colour_shape.labels[i];
        assert!(caption_of(&colour_shape, i).contains(&colour_shape.classnames[label]), "sample {i}");
    }
    for i in 0..shapes.images.len() {
        assert!(caption_of(&shapes, i).contains(&shapes.classnames[shapes.labels[i]]));
        assert_eq!(shapes.labels.iter().filter(|&&l| l == shapes.labels[i]).count(), 4);
    }
    let retrieval = synthetic.retrieval(10);
    assert_eq!(retrieval.len(), 10);
    assert_eq!(retrieval.caption(3), synthetic.heldout().caption(3));
}

/// How far apart two shapes of the same colour, place and size are in an
/// image, relative to how far each is from the empty background: near zero
/// when the shapes cannot be told apart.
fn shape_contrast(a: ShapeKind, b: ShapeKind, scene: &Scene, size: usize) -> f64 {
    let render = |shapes: Vec<PlacedShape>| {
        let scene = Scene { shapes, background: scene.background.clone() };
        render_scene(&scene, &View::eval(size)).pixels
    };
    let shape = &scene.shapes[0];
    let with = |kind| render(vec![PlacedShape { kind, rotation: 0.0, ..shape.clone() }]);
    let distance =
        |x: &[u8], y: &[u8]| x.iter().zip(y).map(|(&p, &q)| (p as f64 - q as f64).powi(2)).sum::<f64>().sqrt();
    distance(&with(a), &with(b)) / distance(&with(a), &render(vec![]))
}

#[test]
fn small_shapes_cannot_be_told_apart_at_16_px_but_can_at_64() {
    let heldout = data(7).heldout();
    let smalls: Vec<Scene> =
        (0..400).map(|i| heldout.scene(i)).filter(|s| s.shapes[0].size == SizeClass::Small).take(8).collect();
    assert_eq!(smalls.len(), 8);
    let pairs = [
        (ShapeKind::Circle, ShapeKind::Square),
        (ShapeKind::Star, ShapeKind::Circle),
        (ShapeKind::Triangle, ShapeKind::Cross),
    ];
    let mean = |size| {
        smalls.iter().flat_map(|s| pairs.iter().map(move |&(a, b)| shape_contrast(a, b, s, size))).sum::<f64>()
            / (smalls.len() * pairs.len()) as f64
    };
    let (at16, at64) = (mean(16), mean(64));
    // At full detail the outlines of two equal-area shapes differ by about
    // half the shape's own signal; at 16 px most of that difference is gone.
    assert!(at64 > 0.4, "small shapes should differ clearly at 64 px: {at64:.2}");
    assert!(at16 < 0.5 * at64, "small shapes should blur together at 16 px: {at16:.2} vs {at64:.2}");
}
