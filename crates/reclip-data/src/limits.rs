//! Ceilings on what a data source may make reclip read, allocate or walk.
//! Each is checked before the work it bounds (file sizes from metadata before
//! a file is opened, image dimensions from the header before decoding, the
//! number of shard paths before expanding a pattern), so a hostile or broken
//! input costs a reported problem or an error, never all the memory or a hang.

/// Shard paths in one shard list (all its `::`-separated patterns together).
/// The largest public WebDataset sets (LAION-5B, DataComp-12.8B) have a few
/// hundred thousand shards; a pattern that names more is a typo such as
/// `{000000000..999999999}`, whose expansion alone would take tens of GB.
pub const MAX_SHARDS: usize = 1_000_000;

/// Bytes in one image file, or one image member of a tar shard. Web-scale
/// sets are resized to a few hundred pixels; even a 20-megapixel camera JPEG
/// is under 20 MiB and a PNG at [`MAX_IMAGE_PIXELS`] under 128 MiB in practice.
pub const MAX_IMAGE_FILE_BYTES: u64 = 128 << 20;

/// Bytes in one caption: a tar `.txt` member, or one CSV caption field. A
/// caption is cut to 77 tokens (a few hundred bytes); a megabyte of it is a
/// wrong file, or a stray quote that swallowed the rest of a list.
pub const MAX_CAPTION_BYTES: u64 = 1 << 20;

/// Bytes in a CSV/TSV list file. A list of 400 million image–caption rows
/// (LAION-400M) is about 40 GB, but such sets ship as tar shards; lists of
/// CC12M's size (12 million rows) are about 2 GB.
pub const MAX_LIST_BYTES: u64 = 4 << 30;

/// Bytes in a text file read whole: prompt templates, class names (and the
/// CLI's `embed --texts`). ImageNet's 1000 names with 80 templates are 40 kB.
pub const MAX_TEXT_FILE_BYTES: u64 = 64 << 20;

/// Pixels (width × height) an image may declare. This is PIL's
/// `Image.MAX_IMAGE_PIXELS`, above which it warns of a decompression bomb;
/// open_clip decodes with PIL, which refuses images of twice this. A 646-byte
/// JPEG can declare 65500 × 65500 pixels (16 GB of RGB).
pub const MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// Folder levels below a class folder that ImageFolder walks. torchvision
/// follows symbolic links, so a link to a folder above it would recurse
/// forever; real class folders are one or two levels deep.
pub const MAX_FOLDER_DEPTH: usize = 32;

/// A byte ceiling named as it is in the docs, for messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ByteCeiling {
    pub name: &'static str,
    pub bytes: u64,
}

pub(crate) const IMAGE_FILE: ByteCeiling = ByteCeiling { name: "MAX_IMAGE_FILE_BYTES", bytes: MAX_IMAGE_FILE_BYTES };
pub(crate) const CAPTION: ByteCeiling = ByteCeiling { name: "MAX_CAPTION_BYTES", bytes: MAX_CAPTION_BYTES };
pub(crate) const LIST_FILE: ByteCeiling = ByteCeiling { name: "MAX_LIST_BYTES", bytes: MAX_LIST_BYTES };
pub(crate) const TEXT_FILE: ByteCeiling = ByteCeiling { name: "MAX_TEXT_FILE_BYTES", bytes: MAX_TEXT_FILE_BYTES };

impl ByteCeiling {
    /// Why `len` bytes of `what` are refused, e.g. "an image of 200000000
    /// bytes, more than the MAX_IMAGE_FILE_BYTES ceiling (128 MiB)".
    pub fn refuse(self, what: &str, len: u64) -> String {
        format!("{what} of {len} bytes, more than {}", self.describe())
    }

    /// "the MAX_IMAGE_FILE_BYTES ceiling (128 MiB)"
    pub fn describe(self) -> String {
        format!("the {} ceiling ({})", self.name, in_units(self.bytes))
    }
}

/// A power-of-two byte count in the largest whole unit (`128 MiB`, `4 GiB`).
fn in_units(bytes: u64) -> String {
    let units = [(30, "GiB"), (20, "MiB"), (10, "KiB")];
    match units.iter().find(|(shift, _)| bytes >= 1 << shift && bytes.is_multiple_of(1 << shift)) {
        Some((shift, unit)) => format!("{} {unit}", bytes >> shift),
        None => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_ceiling_in_whole_units() {
        assert_eq!(
            IMAGE_FILE.refuse("an image", 200_000_000),
            "an image of 200000000 bytes, more than the MAX_IMAGE_FILE_BYTES ceiling (128 MiB)"
        );
        assert!(LIST_FILE.refuse("a list", 5 << 30).ends_with("(4 GiB)"));
        assert!(CAPTION.refuse("a caption", 2 << 20).ends_with("MAX_CAPTION_BYTES ceiling (1 MiB)"));
        assert_eq!(in_units(1000), "1000 bytes");
        assert_eq!(in_units(3 << 10), "3 KiB");
    }
}
