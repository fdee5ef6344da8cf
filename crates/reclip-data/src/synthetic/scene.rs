//! Random scenes of one coloured shape, or of two or three smaller ones, on a
//! background, in the unit square (x right, y down), independent of any
//! resolution.

use rand::Rng;
use reclip_core::Rng as ChaCha;

/// Eight well separated hues, saturated enough to stand out from the muted backgrounds.
pub const COLOURS: [(&str, [f32; 3]); 8] = [
    ("red", [0.86, 0.12, 0.12]),
    ("orange", [0.96, 0.55, 0.06]),
    ("yellow", [0.95, 0.88, 0.10]),
    ("green", [0.10, 0.66, 0.20]),
    ("cyan", [0.05, 0.76, 0.86]),
    ("blue", [0.12, 0.26, 0.86]),
    ("purple", [0.56, 0.20, 0.76]),
    ("pink", [0.98, 0.50, 0.78]),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShapeKind {
    Circle,
    Square,
    Triangle,
    Star,
    Cross,
    Ring,
}

pub const SHAPES: [ShapeKind; 6] =
    [ShapeKind::Circle, ShapeKind::Square, ShapeKind::Triangle, ShapeKind::Star, ShapeKind::Cross, ShapeKind::Ring];

const SQUARE_HALF_SIDE: f32 = 0.75;
const RING_INNER: f32 = 0.5;
const STAR_INNER: f32 = 0.45;
const CROSS_HALF_WIDTH: f32 = 0.3;
const CROSS_HALF_LENGTH: f32 = 0.9;

impl ShapeKind {
    pub fn name(self) -> &'static str {
        match self {
            ShapeKind::Circle => "circle",
            ShapeKind::Square => "square",
            ShapeKind::Triangle => "triangle",
            ShapeKind::Star => "star",
            ShapeKind::Cross => "cross",
            ShapeKind::Ring => "ring",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            ShapeKind::Cross => "crosses",
            ShapeKind::Circle => "circles",
            ShapeKind::Square => "squares",
            ShapeKind::Triangle => "triangles",
            ShapeKind::Star => "stars",
            ShapeKind::Ring => "rings",
        }
    }

    /// The area of the unit shape (the shape as drawn by `contains`).
    fn unit_area(self) -> f32 {
        use std::f32::consts::PI;
        match self {
            ShapeKind::Circle => PI,
            ShapeKind::Ring => PI * (1.0 - RING_INNER * RING_INNER),
            ShapeKind::Square => 4.0 * SQUARE_HALF_SIDE * SQUARE_HALF_SIDE,
            ShapeKind::Triangle => 3.0 * 3f32.sqrt() / 4.0,
            ShapeKind::Star => 5.0 * STAR_INNER * (PI / 5.0).sin(),
            ShapeKind::Cross => 8.0 * CROSS_HALF_WIDTH * CROSS_HALF_LENGTH - 4.0 * CROSS_HALF_WIDTH * CROSS_HALF_WIDTH,
        }
    }

    /// How much the unit shape is enlarged so that every kind of the same
    /// size covers the same area as a circle: a shape then cannot be told
    /// from its amount of colour, only from its outline.
    fn scale(self) -> f32 {
        (std::f32::consts::PI / self.unit_area()).sqrt()
    }

    /// The radius of the disc that holds the shape, for a size of 1.
    pub fn extent(self) -> f32 {
        let unit_extent = match self {
            ShapeKind::Square => SQUARE_HALF_SIDE * std::f32::consts::SQRT_2,
            _ => 1.0,
        };
        unit_extent * self.scale()
    }

    fn rotates(self) -> bool {
        !matches!(self, ShapeKind::Circle | ShapeKind::Ring)
    }

    /// Whether a point in shape coordinates (unit size, unrotated, y down) is inside.
    fn contains(self, x: f32, y: f32) -> bool {
        match self {
            ShapeKind::Circle => x * x + y * y <= 1.0,
            ShapeKind::Ring => (RING_INNER * RING_INNER..=1.0).contains(&(x * x + y * y)),
            ShapeKind::Square => x.abs() <= SQUARE_HALF_SIDE && y.abs() <= SQUARE_HALF_SIDE,
            ShapeKind::Cross => {
                let (ax, ay) = (x.abs(), y.abs());
                (ax <= CROSS_HALF_WIDTH && ay <= CROSS_HALF_LENGTH)
                    || (ay <= CROSS_HALF_WIDTH && ax <= CROSS_HALF_LENGTH)
            }
            // Apex up, circumradius 1, inradius 1/2: inside all three edges.
            ShapeKind::Triangle => {
                let s = 3f32.sqrt() / 2.0;
                y <= 0.5 && s * x - 0.5 * y <= 0.5 && -s * x - 0.5 * y <= 0.5
            }
            ShapeKind::Star => star_contains(x, y),
        }
    }
}

/// cos and sin of k·72° (the star's tips, from "up"), and of 36°.
const STAR_TIPS: [[f32; 2]; 5] = [
    [1.0, 0.0],
    [0.309_017, 0.951_056_5],
    [-0.809_017, 0.587_785_24],
    [-0.809_017, -0.587_785_24],
    [0.309_017, -0.951_056_5],
];
const STAR_HALF_SECTOR: [f32; 2] = [0.809_017, 0.587_785_24];

/// A five-pointed star, one point up: fold the point into the half-sector
/// between a tip (angle 0) and the next inner corner, then test which side of
/// that edge it lies on. The fold is done with cross products against the
/// tips' directions, not with atan2, cos and sin: those made the built-in
/// data's rendering an eighth of the default training run's CPU time.
fn star_contains(x: f32, y: f32) -> bool {
    if x * x + y * y > 1.0 {
        return false;
    }
    // (a, b): "up" (−y, y being down) and x; angles run from a towards b.
    let (a, b) = (-y, x);
    let cross = |d: [f32; 2], a: f32, b: f32| d[0] * b - d[1] * a;
    let sector =
        (0..5).find(|&k| cross(STAR_TIPS[k], a, b) >= 0.0 && cross(STAR_TIPS[(k + 1) % 5], a, b) < 0.0).unwrap_or(0);
    // Rotate back by the sector's angle, then mirror the upper half-sector.
    let [c, s] = STAR_TIPS[sector];
    let (mut px, mut py) = (a * c + b * s, b * c - a * s);
    if cross(STAR_HALF_SECTOR, px, py) > 0.0 {
        let along = 2.0 * (px * STAR_HALF_SECTOR[0] + py * STAR_HALF_SECTOR[1]);
        (px, py) = (along * STAR_HALF_SECTOR[0] - px, along * STAR_HALF_SECTOR[1] - py);
    }
    let (bx, by) = (STAR_INNER * STAR_HALF_SECTOR[0], STAR_INNER * STAR_HALF_SECTOR[1]);
    // Edge from the tip (1, 0) to the inner corner b; the centre is on its inner side.
    let edge = |qx: f32, qy: f32| (bx - 1.0) * qy - by * (qx - 1.0);
    edge(px, py) * edge(0.0, 0.0) >= 0.0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SizeClass {
    Small,
    Medium,
    Large,
}

impl SizeClass {
    /// Shape size (the radius of a circle of the same area) as a fraction of
    /// the image side. A small shape is 2 to 3 px across at 16 px — a blob
    /// whose outline cannot be told — and 9 to 12 px across at 64 px. A
    /// medium or large shape is 12 to 19 px across at 32 px, two or three
    /// 8 px patches, so that a small ViT learns outlines at low resolution
    /// within minutes of training (with lone shapes of 10 to 17 px, a
    /// 2200-step reclip-tiny run ended at 87% zero-shot top-1 instead of 94%).
    fn radius_range(self) -> (f32, f32) {
        match self {
            SizeClass::Small => (0.07, 0.09),
            SizeClass::Medium => (0.18, 0.22),
            SizeClass::Large => (0.25, 0.30),
        }
    }
}

/// The sizes a shape may take in a scene of `count` shapes. A lone shape is
/// medium or large: the subject fills a good part of the frame, as in a photo
/// of one object, and its outline can be told at low resolution. Crowded
/// scenes hold small and medium shapes, so that they fit.
fn sizes(count: usize) -> &'static [SizeClass] {
    if count == 1 { &[SizeClass::Medium, SizeClass::Large] } else { &[SizeClass::Small, SizeClass::Medium] }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlacedShape {
    pub kind: ShapeKind,
    /// Index into [`COLOURS`].
    pub colour: usize,
    pub size: SizeClass,
    pub centre: [f32; 2],
    /// The radius of a circle with the shape's area, as a fraction of the image side.
    pub radius: f32,
    pub rotation: f32,
    pub rgb: [f32; 3],
}

impl PlacedShape {
    pub fn colour_name(&self) -> &'static str {
        COLOURS[self.colour].0
    }

    pub(crate) fn bounding_radius(&self) -> f32 {
        self.radius * self.kind.extent()
    }

    /// The shape's placement, with its rotation and scale worked out once
    /// for the many point tests of a render.
    pub(crate) fn frame(&self) -> ShapeFrame {
        let (sin, cos) = (-self.rotation).sin_cos();
        ShapeFrame {
            kind: self.kind,
            centre: self.centre,
            sin,
            cos,
            inv_radius: 1.0 / (self.radius * self.kind.scale()),
        }
    }
}

pub(crate) struct ShapeFrame {
    kind: ShapeKind,
    centre: [f32; 2],
    sin: f32,
    cos: f32,
    inv_radius: f32,
}

impl ShapeFrame {
    /// Whether the scene point (u, v) is inside the shape.
    pub(crate) fn contains(&self, u: f32, v: f32) -> bool {
        let (dx, dy) = ((u - self.centre[0]) * self.inv_radius, (v - self.centre[1]) * self.inv_radius);
        self.kind.contains(self.cos * dx - self.sin * dy, self.sin * dx + self.cos * dy)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pattern {
    Plain,
    /// From `base` to `alt` along `direction`.
    Gradient {
        direction: [f32; 2],
    },
    /// Soft sinusoidal stripes across `direction` with the given period.
    Stripes {
        direction: [f32; 2],
        period: f32,
    },
    /// `base` on one side of a line, `alt` on the other.
    Split {
        normal: [f32; 2],
        offset: f32,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Background {
    pub base: [f32; 3],
    pub alt: [f32; 3],
    pub pattern: Pattern,
}

impl Background {
    /// A word for the caption: how light the background is.
    pub fn tone(&self) -> &'static str {
        let l = luminance(self.base);
        if l < 0.35 {
            "dark"
        } else if l > 0.65 {
            "light"
        } else {
            "grey"
        }
    }

    pub fn pattern_word(&self) -> &'static str {
        match self.pattern {
            Pattern::Plain => "plain",
            Pattern::Gradient { .. } => "shaded",
            Pattern::Stripes { .. } => "striped",
            Pattern::Split { .. } => "two-tone",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    pub background: Background,
    pub shapes: Vec<PlacedShape>,
}

/// What a class set fixes about its single shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Forced {
    pub kind: ShapeKind,
    pub colour: Option<usize>,
}

const GAP: f32 = 0.03;
const PLACEMENT_TRIES: usize = 100;
const BACKGROUND_TRIES: usize = 24;
const MIN_COLOUR_DISTANCE: f32 = 0.45;

impl Scene {
    /// `crowded_percent` of the scenes (none of a class set's) hold two or three shapes.
    pub(crate) fn random(rng: &mut ChaCha, forced: Option<Forced>, crowded_percent: u8) -> Scene {
        let crowded = forced.is_none() && rng.random_range(0..100) < crowded_percent;
        let count = if crowded { rng.random_range(2..=3) } else { 1 };
        let mut shapes: Vec<PlacedShape> = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = forced.map_or_else(|| SHAPES[rng.random_range(0..SHAPES.len())], |f| f.kind);
            let colour = forced.and_then(|f| f.colour).unwrap_or_else(|| rng.random_range(0..COLOURS.len()));
            let sizes = sizes(count);
            let size = sizes[rng.random_range(0..sizes.len())];
            let (lo, hi) = size.radius_range();
            let radius = rng.random_range(lo..=hi);
            let rotation = if kind.rotates() { rng.random_range(-0.35..=0.35) } else { 0.0 };
            let rgb = COLOURS[colour].1.map(|c| (c + rng.random_range(-0.04..=0.04)).clamp(0.0, 1.0));
            let extent = radius * kind.extent();
            let margin = extent + GAP;
            // Shapes never overlap, so each stays recognisable; one that finds no room is left out.
            let centre = (0..PLACEMENT_TRIES)
                .map(|_| [rng.random_range(margin..=1.0 - margin), rng.random_range(margin..=1.0 - margin)])
                .find(|c| {
                    shapes.iter().all(|s| {
                        let d = ((c[0] - s.centre[0]).powi(2) + (c[1] - s.centre[1]).powi(2)).sqrt();
                        d >= extent + s.bounding_radius() + GAP
                    })
                });
            if let Some(centre) = centre {
                shapes.push(PlacedShape { kind, colour, size, centre, radius, rotation, rgb });
            }
        }
        let background = random_background(rng, &shapes);
        Scene { background, shapes }
    }
}

fn luminance(c: [f32; 3]) -> f32 {
    0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt()
}

/// A muted background far from every shape's colour, so shapes always stand out.
fn random_background(rng: &mut ChaCha, shapes: &[PlacedShape]) -> Background {
    let mut best = ([0.5; 3], f32::MIN);
    for _ in 0..BACKGROUND_TRIES {
        let grey: f32 = rng.random_range(0.05..=0.95);
        let base = [0, 1, 2].map(|_| (grey + rng.random_range(-0.06..=0.06)).clamp(0.0, 1.0));
        let nearest = shapes.iter().map(|s| distance(s.rgb, base)).fold(f32::MAX, f32::min);
        if nearest > best.1 {
            best = (base, nearest);
        }
        if nearest >= MIN_COLOUR_DISTANCE {
            break;
        }
    }
    let base = best.0;
    // The second tone moves away from the nearer extreme so it stays in range.
    let shift = rng.random_range(0.06..=0.12) * if luminance(base) > 0.5 { -1.0 } else { 1.0 };
    let alt = base.map(|c| (c + shift).clamp(0.0, 1.0));
    let angle = rng.random_range(0.0..std::f32::consts::TAU);
    let direction = [angle.cos(), angle.sin()];
    let pattern = match rng.random_range(0..4) {
        0 => Pattern::Plain,
        1 => Pattern::Gradient { direction },
        2 => Pattern::Stripes { direction, period: rng.random_range(0.12..=0.3) },
        _ => Pattern::Split { normal: direction, offset: rng.random_range(-0.2..=0.2) },
    };
    Background { base, alt, pattern }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_shape_covers_the_area_of_a_circle_of_its_size() {
        let n = 500;
        for kind in SHAPES {
            let shape = PlacedShape {
                kind,
                colour: 0,
                size: SizeClass::Large,
                centre: [0.5, 0.5],
                radius: 0.2,
                rotation: 0.3,
                rgb: [1.0; 3],
            };
            let frame = shape.frame();
            let inside =
                (0..n * n).filter(|i| frame.contains((i % n) as f32 / n as f32, (i / n) as f32 / n as f32)).count();
            let area = inside as f32 / (n * n) as f32;
            let circle = std::f32::consts::PI * 0.04;
            assert!((area / circle - 1.0).abs() < 0.02, "{kind:?}: area {area} vs {circle}");
            let outside = (0..n * n).any(|i| {
                let (u, v) = ((i % n) as f32 / n as f32, (i / n) as f32 / n as f32);
                frame.contains(u, v) && ((u - 0.5).powi(2) + (v - 0.5).powi(2)).sqrt() > shape.bounding_radius()
            });
            assert!(!outside, "{kind:?} reaches beyond its extent");
        }
    }

    /// The fold by cross products is the fold by angles: over a fine grid
    /// the two disagree only where a point is within 1e-4 of the star's edge.
    #[test]
    fn the_star_folded_without_trigonometry_is_the_same_star() {
        use std::f32::consts::PI;
        let by_angle = |x: f32, y: f32| {
            let r = (x * x + y * y).sqrt();
            if r > 1.0 {
                return false;
            }
            let sector = 2.0 * PI / 5.0;
            let mut angle = x.atan2(-y).rem_euclid(sector);
            if angle > sector / 2.0 {
                angle = sector - angle;
            }
            let (px, py) = (r * angle.cos(), r * angle.sin());
            let (bx, by) = (STAR_INNER * (sector / 2.0).cos(), STAR_INNER * (sector / 2.0).sin());
            let cross = |qx: f32, qy: f32| (bx - 1.0) * qy - by * (qx - 1.0);
            cross(px, py) * cross(0.0, 0.0) >= 0.0
        };
        let n = 1001;
        let (mut inside, mut differ) = (0, 0);
        for i in 0..n * n {
            let (x, y) = ((i % n) as f32 / (n / 2) as f32 - 1.0, (i / n) as f32 / (n / 2) as f32 - 1.0);
            inside += usize::from(star_contains(x, y));
            if star_contains(x, y) != by_angle(x, y) {
                differ += 1;
                let near_edge = [(1e-4, 0.0), (-1e-4, 0.0), (0.0, 1e-4), (0.0, -1e-4)]
                    .iter()
                    .any(|(dx, dy)| by_angle(x + dx, y + dy) != by_angle(x, y));
                assert!(near_edge, "({x}, {y}) is inside one star and outside the other, away from the edge");
            }
        }
        assert!(inside > n * n / 10, "the star covers {inside} of {} points", n * n);
        assert!(differ * 100_000 < n * n, "{differ} points differ");
    }

    #[test]
    fn shapes_stay_inside_their_extent_and_in_the_image() {
        for seed in 0..200 {
            let scene = Scene::random(&mut reclip_core::rng(seed), None, 50);
            assert!((1..=3).contains(&scene.shapes.len()));
            for s in &scene.shapes {
                let e = s.bounding_radius();
                assert!(s.centre.iter().all(|&c| c - e >= 0.0 && c + e <= 1.0), "{s:?}");
                for t in &scene.shapes {
                    if s != t {
                        let d = ((s.centre[0] - t.centre[0]).powi(2) + (s.centre[1] - t.centre[1]).powi(2)).sqrt();
                        assert!(d >= e + t.bounding_radius(), "overlap in scene {seed}");
                    }
                }
            }
        }
    }

    #[test]
    fn backgrounds_are_far_from_the_shape_colours() {
        let mut close = 0;
        for seed in 0..300 {
            let scene = Scene::random(&mut reclip_core::rng(seed), None, 50);
            let nearest = scene.shapes.iter().map(|s| distance(s.rgb, scene.background.base)).fold(f32::MAX, f32::min);
            if nearest < MIN_COLOUR_DISTANCE {
                close += 1;
            }
            assert!(nearest > 0.25, "scene {seed}: background {:?} too close", scene.background.base);
        }
        assert!(close < 15, "{close} of 300 backgrounds are closer than {MIN_COLOUR_DISTANCE}");
    }
}
