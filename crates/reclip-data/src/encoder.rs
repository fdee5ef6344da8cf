/// Turns a caption into token ids. The CLIP tokenizer implements this in its
/// own crate; the loader only needs the ids.
pub trait CaptionEncoder: Send + Sync {
    /// Exactly `context_length` ids: the caption's tokens between the start and
    /// end markers, truncated or padded as the tokenizer defines.
    fn encode(&self, caption: &str, context_length: usize) -> Vec<u32>;
}
