//! Image decoding: `decode_view` on arbitrary bytes either refuses them or
//! returns exactly the view's square, the same every time.

use super::Verdict;
use crate::views::{check_image, view_for};
use reclip_data::decode_view;

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

pub fn seeds() -> Vec<Vec<u8>> {
    crate::samples::image_seeds()
}

/// Two views per input (sizes, transforms and JPEG scales drawn from its
/// bytes); the first is decoded twice to check that decoding is deterministic.
pub fn run(input: &[u8]) -> Result<Verdict, String> {
    let first = view_for(input, 0);
    let decoded = decode_view(input, &first);
    if decode_view(input, &first) != decoded {
        return Err(format!("decoding twice for {first:?} gave different results"));
    }
    let mut verdict = match &decoded {
        Ok(image) => {
            check_image(image, &first)?;
            Verdict::Accepted
        }
        Err(reason) => Verdict::Rejected(reason.clone()),
    };
    let second = view_for(input, 1);
    if let Ok(image) = decode_view(input, &second) {
        check_image(&image, &second)?;
        verdict = Verdict::Accepted;
    }
    Ok(verdict)
}

/// Rewrites every PNG chunk's CRC, which the decoder checks before it reads
/// the chunk; JPEG has no checksum.
pub fn repair(input: &mut [u8]) {
    if !input.starts_with(PNG_MAGIC) {
        return;
    }
    let mut at = PNG_MAGIC.len();
    while let Some(len) = input.get(at..at + 4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize) {
        let Some(crc_at) = (at + 8).checked_add(len).filter(|&end| end + 4 <= input.len()) else { return };
        let crc = crc32(&input[at + 4..crc_at]);
        input[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
        at = crc_at + 4;
    }
}

/// CRC-32 (ISO-HDLC, PNG's), bit by bit: chunks are small.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_puts_back_the_crc_the_encoder_wrote() {
        // IHDR: length at 8, type at 12, 13 bytes of data at 16, CRC at 29.
        let seed = crate::samples::rgb_png(20, 12);
        let mut input = seed.clone();
        input[29] ^= 0xff;
        repair(&mut input);
        assert!(input == seed, "the CRC differs from the one the encoder wrote");
        input[19] ^= 1; // the width's low byte
        repair(&mut input);
        assert_ne!(input[29..33], seed[29..33]);
        assert_eq!(input[29..33], crc32(&input[12..29]).to_be_bytes());
    }
}
