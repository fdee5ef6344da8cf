//! CLIP's tokenizer as open_clip applies it: captions are cleaned (ftfy's rule-based fixes, HTML
//! unescaping, white space collapsed, lowercase), split into words and encoded with OpenAI's
//! byte-level BPE vocabulary (49,408 ids, bundled by `instant-clip-tokenizer`), framed by the
//! start and end tokens, then padded with 0 or cut to the context length.
//!
//! The output equals open_clip's `tokenize` except for captions that need ftfy's heuristic
//! mojibake repair ("cafÃ©" for "café"), which no Rust crate offers: those are tokenized as written.
//!
//! [`ClipTokenizer`] is the data loader's [`CaptionEncoder`].

mod clean;
mod fix_text;

pub use clean::TextCleaner;

use instant_clip_tokenizer::{Token, Tokenizer};
use reclip_core::{Error, Result};
use reclip_data::CaptionEncoder;

/// open_clip's start-of-text and end-of-text ids; models trained with them expect these values.
const SOT: u16 = 49406;
const EOT: u16 = 49407;

pub struct ClipTokenizer {
    bpe: Tokenizer,
    cleaner: TextCleaner,
}

impl ClipTokenizer {
    /// Builds the BPE tables from the bundled vocabulary (tens of milliseconds: build it once).
    pub fn new() -> Result<Self> {
        let bpe = Tokenizer::new();
        let (sot, eot) = (bpe.start_of_text().to_u16(), bpe.end_of_text().to_u16());
        if (sot, eot) != (SOT, EOT) {
            return Err(Error::invalid(
                "ClipTokenizer::new",
                format!("bundled vocabulary gives start/end ids {sot}/{eot}, open_clip uses {SOT}/{EOT}"),
            ));
        }
        Ok(Self { bpe, cleaner: TextCleaner::new()? })
    }

    /// Exactly `context_length` ids: start, the caption's BPE ids, end, then 0s. A caption too
    /// long for that is cut, and its last kept id replaced by the end token (the text tower reads
    /// its feature at the end token, the largest id). A context length of 1 holds only the end
    /// token, as in open_clip.
    pub fn tokenize(&self, text: &str, context_length: usize) -> Vec<u32> {
        let mut ids = vec![0; context_length];
        self.tokenize_into(text, &mut ids);
        ids
    }

    /// `texts.len()` rows of [`tokenize`](Self::tokenize), row-major.
    pub fn tokenize_batch(&self, texts: &[&str], context_length: usize) -> Vec<u32> {
        let mut ids = vec![0; texts.len() * context_length];
        if context_length > 0 {
            for (text, row) in texts.iter().zip(ids.chunks_exact_mut(context_length)) {
                self.tokenize_into(text, row);
            }
        }
        ids
    }

    /// The cleaned text that the BPE splits into words.
    pub fn clean(&self, text: &str) -> String {
        self.cleaner.clean(text)
    }

    pub fn vocab_size(&self) -> usize {
        usize::from(EOT) + 1
    }

    pub fn sot(&self) -> u32 {
        u32::from(SOT)
    }

    pub fn eot(&self) -> u32 {
        u32::from(EOT)
    }

    fn tokenize_into(&self, text: &str, row: &mut [u32]) {
        let mut tokens: Vec<Token> = vec![self.bpe.start_of_text()];
        self.bpe.encode(&self.cleaner.clean(text), &mut tokens);
        tokens.push(self.bpe.end_of_text());
        if tokens.len() > row.len() {
            tokens.truncate(row.len());
            if let Some(last) = tokens.last_mut() {
                *last = self.bpe.end_of_text();
            }
        }
        for (slot, token) in row.iter_mut().zip(&tokens) {
            *slot = u32::from(token.to_u16());
        }
    }
}

impl CaptionEncoder for ClipTokenizer {
    fn encode(&self, caption: &str, context_length: usize) -> Vec<u32> {
        self.tokenize(caption, context_length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pads_and_truncates_keeping_the_end_token() {
        let tok = ClipTokenizer::new().unwrap();
        // "a photo of a cat" is [320, 1125, 539, 320, 2368] in OpenAI's vocabulary.
        assert_eq!(tok.tokenize("A photo of a cat", 9), [49406, 320, 1125, 539, 320, 2368, 49407, 0, 0]);
        assert_eq!(tok.tokenize("A photo of a cat", 7), [49406, 320, 1125, 539, 320, 2368, 49407]);
        assert_eq!(tok.tokenize("A photo of a cat", 4), [49406, 320, 1125, 49407]);
        assert_eq!(tok.tokenize("A photo of a cat", 1), [49407]);
        assert!(tok.tokenize("A photo of a cat", 0).is_empty());
        assert_eq!(tok.tokenize("", 3), [49406, 49407, 0]);
    }

    #[test]
    fn batch_rows_equal_single_captions() {
        let tok = ClipTokenizer::new().unwrap();
        let texts = ["a dog", "", "a very long caption about a cat on a mat"];
        let batch = tok.tokenize_batch(&texts, 6);
        let rows: Vec<u32> = texts.iter().flat_map(|t| tok.tokenize(t, 6)).collect();
        assert_eq!(batch, rows);
        assert!(tok.tokenize_batch(&texts, 0).is_empty());
        assert_eq!((tok.sot(), tok.eot(), tok.vocab_size()), (49406, 49407, 49408));
    }

    #[test]
    fn encodes_captions_for_the_loader_as_it_tokenizes() {
        let tok = ClipTokenizer::new().unwrap();
        let encoder: &dyn CaptionEncoder = &tok;
        assert_eq!(encoder.encode("A photo of a cat", 5), tok.tokenize("A photo of a cat", 5));
    }
}
