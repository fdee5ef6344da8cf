//! Byte-level mutations of a seed input, the kind that find parser bugs
//! without coverage feedback: flipped bits, boundary bytes and integers,
//! inserted, deleted and duplicated ranges, splices from other seeds, and
//! numbers in text (JSON fields, tar's octal sizes) replaced by extremes.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

/// Inputs never grow past this; every target reads files far smaller, and a
/// bound keeps stacked duplications from turning one case into megabytes.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Most mutations stacked on one seed. Counts are drawn geometrically, so
/// most cases are one to three edits away from a valid input and still get
/// past the first checks.
pub const MAX_MUTATIONS: usize = 16;

const INTERESTING_BYTES: &[u8] = &[0x00, 0x01, 0x7f, 0x80, 0xff, b' ', b'\t', b'\n', b'"', b',', b'{', b'}', b'.'];

const INTERESTING_INTEGERS: &[u64] =
    &[0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 32, i64::MAX as u64, u64::MAX];

/// Replacements for a number written in text.
const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "3",
    "1e308",
    "-1e308",
    "1e-308",
    "0.5",
    "-0",
    "65536",
    "2147483648",
    "4294967296",
    "999999999999",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
];

/// Applies one to [`MAX_MUTATIONS`] random edits to `input`; `others` are the
/// target's seeds, for splicing.
pub fn mutate(rng: &mut ChaCha8Rng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    let mut count = 1;
    while count < MAX_MUTATIONS && rng.random_bool(0.5) {
        count += 1;
    }
    for _ in 0..count {
        mutate_once(rng, input, others);
        input.truncate(MAX_INPUT_BYTES);
    }
}

fn mutate_once(rng: &mut ChaCha8Rng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    if input.is_empty() {
        let len = rng.random_range(1..=16);
        input.extend((0..len).map(|_| rng.random::<u8>()));
        return;
    }
    let len = input.len();
    match rng.random_range(0..11) {
        0 => input[rng.random_range(0..len)] ^= 1 << rng.random_range(0..8),
        1 => input[rng.random_range(0..len)] = *INTERESTING_BYTES.choose(rng).expect("non-empty"),
        2 => input[rng.random_range(0..len)] = rng.random(),
        3 => {
            let at = rng.random_range(0..=len);
            let n = rng.random_range(1..=16);
            let bytes: Vec<u8> =
                if rng.random_bool(0.5) { vec![rng.random(); n] } else { (0..n).map(|_| rng.random()).collect() };
            input.splice(at..at, bytes);
        }
        4 => {
            let (start, end) = range(rng, len);
            input.drain(start..end);
        }
        5 => {
            let (start, end) = range(rng, len);
            let copy = input[start..end].to_vec();
            let at = rng.random_range(0..=len);
            input.splice(at..at, copy);
        }
        6 => input.truncate(rng.random_range(0..len)),
        7 => splice(rng, input, others),
        8 => set_integer(rng, input),
        9 => replace_number(rng, input),
        _ => rewrite_digits(rng, input),
    }
}

/// A short range, as corrupt data usually is.
fn range(rng: &mut ChaCha8Rng, len: usize) -> (usize, usize) {
    let start = rng.random_range(0..len);
    let end = start + rng.random_range(1..=(len - start).min(64));
    (start, end)
}

/// Replaces a range of `input` with a range of another seed.
fn splice(rng: &mut ChaCha8Rng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    let Some(other) = others.choose(rng).filter(|o| !o.is_empty()) else { return };
    let (from, to) = range(rng, other.len());
    let (start, end) = range(rng, input.len());
    input.splice(start..end, other[from..to].iter().copied());
}

/// Overwrites 2, 4 or 8 bytes with a boundary integer, either byte order
/// (lengths and sizes in binary headers: PNG chunks, JPEG segments, safetensors).
fn set_integer(rng: &mut ChaCha8Rng, input: &mut [u8]) {
    let width = *[2usize, 4, 8].choose(rng).expect("non-empty");
    if input.len() < width {
        return;
    }
    let value = INTERESTING_INTEGERS.choose(rng).expect("non-empty").wrapping_add(rng.random_range(0..=2)) as u128;
    let at = rng.random_range(0..=input.len() - width);
    let bytes = value.to_le_bytes();
    for i in 0..width {
        input[at + i] = if rng.random_bool(0.5) { bytes[i] } else { bytes[width - 1 - i] };
    }
}

/// Where ASCII numbers (`-12.5e3`) lie in `input`.
fn numbers(input: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < input.len() {
        if input[i].is_ascii_digit() {
            let start = if i > 0 && input[i - 1] == b'-' { i - 1 } else { i };
            while i < input.len() && (input[i].is_ascii_digit() || matches!(input[i], b'.' | b'e' | b'E' | b'+')) {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

/// Replaces one number in the text with an extreme one (JSON fields, tar sizes).
fn replace_number(rng: &mut ChaCha8Rng, input: &mut Vec<u8>) {
    let spans = numbers(input);
    let Some(&(start, end)) = spans.choose(rng) else { return };
    let with = INTERESTING_NUMBERS.choose(rng).expect("non-empty");
    input.splice(start..end, with.bytes());
}

/// Rewrites one number's digits in place, keeping its width: fixed-width
/// fields (tar's octal sizes and modes) stay where the format expects them.
fn rewrite_digits(rng: &mut ChaCha8Rng, input: &mut [u8]) {
    let spans = numbers(input);
    let Some(&(start, end)) = spans.choose(rng) else { return };
    let digit = if rng.random_bool(0.5) { b'7' } else { b'0' + rng.random_range(0..10) };
    let all_same = rng.random_bool(0.5);
    for b in input[start..end].iter_mut().filter(|b| b.is_ascii_digit()) {
        *b = if all_same { digit } else { b'0' + rng.random_range(0..10) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn numbers_are_found_with_their_sign_and_exponent() {
        assert_eq!(numbers(b"{\"a\": -12.5e3, \"b\": 7}"), vec![(6, 13), (20, 21)]);
    }

    #[test]
    fn mutations_change_inputs_and_respect_the_size_bound() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let seed = b"{\"embed_dim\": 64, \"text_cfg\": {\"width\": 32}}".to_vec();
        let mut changed = 0;
        for _ in 0..200 {
            let mut input = seed.clone();
            mutate(&mut rng, &mut input, std::slice::from_ref(&seed));
            assert!(input.len() <= MAX_INPUT_BYTES);
            changed += usize::from(input != seed);
        }
        assert!(changed > 180, "only {changed} of 200 mutations changed the input");
    }
}
