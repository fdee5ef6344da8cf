//! Checks that every rank holds the same thing: the same options at the
//! start, the same weights as training goes on. Ranks that drift apart
//! would go on training different models without a word.

use crate::Comm;
use reclip_autograd::Param;
use reclip_core::{Error, Result};

/// An error naming the first rank whose `value` differs from rank 0's.
pub fn check_agree(comm: &Comm, what: &str, value: u64) -> Result<()> {
    let all = comm.all_gather_u64(&[value])?;
    match all.iter().position(|v| *v != all[0]) {
        None => Ok(()),
        Some(r) => Err(Error::invalid(
            "data parallelism",
            format!("ranks disagree on {what}: rank 0 has {:016x}, rank {r} has {:016x}", all[0], all[r]),
        )),
    }
}

/// A hash of every bit of the parameters' values, in order: equal on two
/// ranks only if their weights are (but for a 2^-64 chance).
pub fn weights_checksum(params: &[Param]) -> Result<u64> {
    let mut h = Hash::new();
    for p in params {
        let v = p.value();
        h.words(&[v.elem_count() as u64]);
        // Master weights are f32 (the optimizer holds no other).
        h.bytes(bytemuck::cast_slice(&v.to_dtype(reclip_core::DType::F32)?.to_vec::<f32>()?));
    }
    Ok(h.finish())
}

/// FNV-1a over 64-bit words, with a final mix: fast enough for every weight
/// of a ViT-B-16 in a fraction of a second, and no cryptography needed.
struct Hash(u64);

impl Hash {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Hash(0xcbf2_9ce4_8422_2325)
    }

    fn words(&mut self, words: &[u64]) {
        for w in words {
            self.0 = (self.0 ^ w).wrapping_mul(Self::PRIME);
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.words(&[u64::from_le_bytes(c.try_into().expect("8 bytes"))]);
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.words(&[u64::from_le_bytes(tail), bytes.len() as u64]);
    }

    fn finish(self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^ (x >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reclip_core::{Device, Tensor};

    fn param(v: &[f32]) -> Param {
        Param::new("w", Tensor::from_slice(v, [v.len()], &Device::Cpu).unwrap())
    }

    #[test]
    fn the_checksum_sees_one_changed_bit_and_the_split_between_parameters() {
        let a = weights_checksum(&[param(&[1.0, 2.0, 3.0])]).unwrap();
        assert_eq!(a, weights_checksum(&[param(&[1.0, 2.0, 3.0])]).unwrap());
        let flipped = f32::from_bits(3.0f32.to_bits() ^ 1);
        assert_ne!(a, weights_checksum(&[param(&[1.0, 2.0, flipped])]).unwrap());
        assert_ne!(a, weights_checksum(&[param(&[1.0]), param(&[2.0, 3.0])]).unwrap());
    }

    #[test]
    fn one_rank_always_agrees_with_itself() {
        check_agree(&Comm::single(), "the options", 42).unwrap();
    }
}
