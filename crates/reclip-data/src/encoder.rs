/// Turns a caption into token ids. `reclip_tokenizer::ClipTokenizer`
/// implements it, in the tokenizer's crate, which depends on this one: the
/// loader only needs the ids, and its tests encode with stand-ins.
pub trait CaptionEncoder: Send + Sync {
    /// Exactly `context_length` ids: the caption's tokens between the start and
    /// end markers, truncated or padded as the tokenizer defines.
    fn encode(&self, caption: &str, context_length: usize) -> Vec<u32>;
}
