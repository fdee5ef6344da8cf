//! Captions that name the colour and shape of every shape in a scene, with
//! size, position, count and background mentioned some of the time, in
//! varied phrasings.

use super::scene::{PlacedShape, Scene, SizeClass};
use rand::Rng;
use rand::seq::IndexedRandom;
use reclip_core::Rng as ChaCha;

fn size_word(size: SizeClass, rng: &mut ChaCha) -> &'static str {
    let words: &[&str] = match size {
        SizeClass::Small => &["small", "tiny"],
        SizeClass::Medium => &["medium", "mid-sized"],
        SizeClass::Large => &["large", "big"],
    };
    words.choose(rng).expect("size words are not empty")
}

/// Where a shape is, on a 3x3 grid.
pub fn position_phrase(centre: [f32; 2]) -> &'static str {
    let col = ((centre[0] * 3.0) as usize).min(2);
    let row = ((centre[1] * 3.0) as usize).min(2);
    [
        ["at the top left", "at the top", "at the top right"],
        ["on the left", "in the centre", "on the right"],
        ["at the bottom left", "at the bottom", "at the bottom right"],
    ][row][col]
}

fn with_article(phrase: String) -> String {
    let article = if phrase.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {phrase}")
}

/// "a small red star at the top left", with the size and position each kept or left out.
fn describe(shape: &PlacedShape, rng: &mut ChaCha, size: bool, position: bool) -> String {
    let mut phrase = String::new();
    if size {
        phrase.push_str(size_word(shape.size, rng));
        phrase.push(' ');
    }
    phrase.push_str(shape.colour_name());
    phrase.push(' ');
    phrase.push_str(shape.kind.name());
    if position {
        phrase.push(' ');
        phrase.push_str(position_phrase(shape.centre));
    }
    with_article(phrase)
}

fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn count_word(n: usize) -> &'static str {
    ["zero", "one", "two", "three"].get(n).copied().unwrap_or("several")
}

pub fn caption(scene: &Scene, rng: &mut ChaCha) -> String {
    // Size and position are named one time in four: a model that could tell
    // most captions apart by them would learn them before it learns outlines.
    let size = rng.random_bool(0.25);
    let position = rng.random_bool(0.25);
    let background = format!("{} {}", scene.background.tone(), scene.background.pattern_word());
    if let [shape] = scene.shapes.as_slice() {
        let d = describe(shape, rng, size, position);
        return match rng.random_range(0..5) {
            0 => d,
            1 => format!("a photo of {d}"),
            2 => format!("an image of {d}"),
            3 => format!("there is {d}"),
            _ => format!("{d} on a {background} background"),
        };
    }
    // Repeated colour-and-shape pairs are counted ("two red circles").
    let mut groups: Vec<(&PlacedShape, usize)> = Vec::new();
    for s in &scene.shapes {
        match groups.iter_mut().find(|(g, _)| g.colour == s.colour && g.kind == s.kind) {
            Some((_, n)) => *n += 1,
            None => groups.push((s, 1)),
        }
    }
    let items: Vec<String> = groups
        .iter()
        .map(|&(s, n)| {
            if n == 1 {
                describe(s, rng, size, position)
            } else {
                format!("{} {} {}", count_word(n), s.colour_name(), s.kind.plural())
            }
        })
        .collect();
    let list = join(&items);
    let n = count_word(scene.shapes.len());
    match rng.random_range(0..5) {
        0 => list,
        1 => format!("{n} shapes: {list}"),
        2 => format!("a picture of {n} shapes, {list}"),
        3 => format!("there are {n} shapes: {list}"),
        _ => format!("{list} on a {background} background"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_a_three_by_three_grid() {
        assert_eq!(position_phrase([0.1, 0.1]), "at the top left");
        assert_eq!(position_phrase([0.5, 0.5]), "in the centre");
        assert_eq!(position_phrase([0.9, 0.5]), "on the right");
        assert_eq!(position_phrase([0.5, 1.0]), "at the bottom");
    }

    #[test]
    fn lists_and_articles_read_naturally() {
        assert_eq!(join(&["a".into(), "b".into(), "c".into()]), "a, b and c");
        assert_eq!(with_article("orange star".into()), "an orange star");
        assert_eq!(with_article("big red ring".into()), "a big red ring");
    }
}
