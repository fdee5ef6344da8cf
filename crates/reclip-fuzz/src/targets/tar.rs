//! WebDataset tar shards: a shard either fails to open or opens with at
//! least one sample, the same on every open, and each sample loads as the
//! view's square with a trimmed, non-empty caption, or is refused.

use super::Verdict;
use crate::samples::{rgb_jpeg, rgb_png};
use crate::scratch;
use crate::views::{check_image, view_for};
use reclip_data::{Dataset, WebDataset};

/// Samples loaded per input: enough to reach past the first member.
const MAX_LOADS: usize = 6;
const BLOCK: usize = 512;

fn member(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, data).expect("writing to memory succeeds");
}

fn shard(add: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    add(&mut builder);
    builder.into_inner().expect("writing to memory succeeds")
}

/// A plain shard; one with a directory, caption-first, incomplete, nested,
/// upper-case and long-named members; and a shard cut inside its second sample.
pub fn seeds() -> Vec<Vec<u8>> {
    let first = |b: &mut tar::Builder<Vec<u8>>| {
        member(b, "000.jpg", &rgb_jpeg(24, 16, 80));
        member(b, "000.txt", b"a photo of a cat");
    };
    let plain = shard(|b| {
        first(b);
        member(b, "001.png", &rgb_png(10, 14));
        member(b, "001.txt", b"  a red square  \n");
    });
    let irregular = shard(|b| {
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        b.append_data(&mut dir, "a/b.c/", std::io::empty()).expect("writing to memory succeeds");
        member(b, "a/b.c/002.txt", b"caption before image");
        member(b, "a/b.c/002.JPG", &rgb_jpeg(9, 9, 60));
        member(b, "003.jpg", &rgb_jpeg(8, 8, 60));
        member(b, "004.txt", b"a caption without an image");
        member(b, "x.seg.txt", b"not a caption");
        member(b, &format!("{}/005.png", "long".repeat(30)), &rgb_png(5, 3));
        member(b, &format!("{}/005.txt", "long".repeat(30)), b"a long member name");
    });
    // Into the PNG's data: past the first sample, less its end-of-archive blocks, and the PNG's header.
    let mut cut = plain.clone();
    cut.truncate(shard(first).len() - 2 * BLOCK + BLOCK + 40);
    vec![plain, irregular, cut]
}

pub fn run(input: &[u8]) -> Result<Verdict, String> {
    let path = scratch::write("shard.tar", input)?;
    let list = path.to_str().ok_or("the temporary folder's path is not UTF-8")?;
    let dataset = match WebDataset::open(list) {
        Ok(d) => d,
        Err(e) => return Ok(Verdict::Rejected(e.to_string())),
    };
    if dataset.is_empty() {
        return Err("the shard opened with no sample".into());
    }
    let again = WebDataset::open(list).map_err(|e| format!("opened once, then failed: {e}"))?;
    if again.len() != dataset.len() || again.open_report() != dataset.open_report() {
        return Err(format!(
            "two opens differ: {} samples ({}) then {} ({})",
            dataset.len(),
            dataset.open_report().summary(),
            again.len(),
            again.open_report().summary()
        ));
    }
    for index in 0..dataset.len().min(MAX_LOADS) {
        let view = view_for(input, index as u64);
        if let Ok(sample) = dataset.load(index, &view) {
            check_image(&sample.image, &view).map_err(|e| format!("sample {index}: {e}"))?;
            if sample.caption.is_empty() || sample.caption.trim() != sample.caption {
                return Err(format!("sample {index} has the caption {:?}, not trimmed and non-empty", sample.caption));
            }
        }
    }
    Ok(Verdict::Accepted)
}

/// Rewrites the checksum of every block that is a tar header (ustar or GNU
/// magic at byte 257) as the tar crate writes it, seven octal digits and a
/// NUL: tar readers refuse a header whose checksum is wrong.
pub fn repair(input: &mut [u8]) {
    for block in input.chunks_exact_mut(BLOCK) {
        if &block[257..262] != b"ustar" {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:07o}\0").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_writes_the_checksum_tar_writes() {
        let seed = seeds().remove(0);
        let mut input = seed.clone();
        input[150] = b'9';
        repair(&mut input);
        assert!(input == seed, "the checksum differs from the one tar wrote");
        input[0] = b'9'; // the first member's name
        repair(&mut input);
        let archive_entry_names = || -> Vec<String> {
            let mut archive = tar::Archive::new(input.as_slice());
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect()
        };
        assert_eq!(archive_entry_names()[0], "900.jpg");
    }
}
