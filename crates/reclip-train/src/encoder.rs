use reclip_data::CaptionEncoder;
use reclip_tokenizer::ClipTokenizer;

/// The CLIP tokenizer as the data loader's caption encoder.
pub struct TokenizerEncoder(pub ClipTokenizer);

impl CaptionEncoder for TokenizerEncoder {
    fn encode(&self, caption: &str, context_length: usize) -> Vec<u32> {
        self.0.tokenize(caption, context_length)
    }
}
