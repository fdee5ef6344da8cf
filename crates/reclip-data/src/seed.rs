//! Sub-seeds. Everything random in a batch (the epoch's order, each crop, each
//! substitute for a bad sample) draws from its own generator seeded by hashing
//! the coordinates it belongs to, so the result cannot depend on which thread
//! made it or when.

/// SplitMix64's finaliser: a bijection on u64 that spreads every input bit.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed derived from an ordered list of coordinates.
pub(crate) fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5eed_c11b_da7a_0001, |h, &p| splitmix(h ^ splitmix(p)))
}

#[cfg(test)]
mod tests {
    use super::mix;

    #[test]
    fn order_and_every_part_matter() {
        assert_ne!(mix(&[1, 2]), mix(&[2, 1]));
        assert_ne!(mix(&[1, 2, 3]), mix(&[1, 2, 4]));
        assert_ne!(mix(&[0]), mix(&[0, 0]));
        assert_eq!(mix(&[7, 8, 9]), mix(&[7, 8, 9]));
    }
}
