//! The CLIP tokenizer on arbitrary text (bytes read as lossy UTF-8): exactly
//! the asked number of ids, all in the vocabulary, framed by the start and end
//! tokens and zero-padded, and a shorter context is the longer one cut with
//! its last kept id replaced by the end token.

use super::Verdict;
use crate::views::fingerprint;
use reclip_tokenizer::ClipTokenizer;
use std::sync::OnceLock;

/// CLIP's context length; the lengths tried are 1 up to it.
const MAX_CONTEXT: usize = 77;

/// How much longer the reference tokenization is than the one checked.
const LONGER_BY: usize = 8;

fn tokenizer() -> Result<&'static ClipTokenizer, String> {
    static TOKENIZER: OnceLock<Result<ClipTokenizer, String>> = OnceLock::new();
    TOKENIZER.get_or_init(|| ClipTokenizer::new().map_err(|e| e.to_string())).as_ref().map_err(Clone::clone)
}

pub fn seeds() -> Vec<Vec<u8>> {
    let long = "a photo of a small dog running on the beach at sunset ".repeat(12);
    [
        "A photo of a cat",
        "",
        "   \t\n  ",
        "Café CRÈME brûlée — naïve façade",
        "日本語のキャプション、中文标题，한국어 캡션",
        "emoji 🐈‍⬛👩🏽‍🚀🇯🇵 and symbols ©®™ ∑∫√",
        "&amp;lt;b&amp;gt;bold&lt;/b&gt; &quot;quoted&quot; &#x27;x&#39; &nbsp;",
        "cafÃ© mojibake â€œquotesâ€\u{9d}",
        "<|startoftext|> inside <|endoftext|> the text",
        "zero\u{200b}width\u{feff}joiners\u{200d} and combining e\u{301}\u{301}\u{301}",
        "control \u{0}\u{7}\u{1b}[31m chars \u{85}\u{2028}",
        "مرحبا بالعالم עברית",
        long.as_str(),
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec()
}

pub fn run(input: &[u8]) -> Result<Verdict, String> {
    let tok = tokenizer()?;
    let text = String::from_utf8_lossy(input);
    let length = 1 + (fingerprint(input, 0) % MAX_CONTEXT as u64) as usize;
    let ids = tok.tokenize(&text, length);
    check_frame(tok, &ids, length)?;
    if tok.tokenize(&text, length) != ids {
        return Err("tokenizing twice gave different ids".into());
    }
    let longer = tok.tokenize(&text, length + LONGER_BY);
    check_frame(tok, &longer, length + LONGER_BY)?;
    let fits = longer[length..].iter().all(|&id| id == 0);
    let expected: Vec<u32> = if fits {
        longer[..length].to_vec()
    } else {
        longer[..length - 1].iter().copied().chain([tok.eot()]).collect()
    };
    if ids != expected {
        return Err(format!("{length} ids {ids:?} are not the first of {} ids {longer:?}", length + LONGER_BY));
    }
    let batch = tok.tokenize_batch(&[&text, "a", &text], length);
    if batch[..length] != ids[..] || batch[2 * length..] != ids[..] {
        return Err("tokenize_batch's rows differ from tokenize".into());
    }
    Ok(Verdict::Accepted)
}

/// `length` ids, in the vocabulary, start token first (unless the context holds
/// only the end token), then the end token, then only zeros.
fn check_frame(tok: &ClipTokenizer, ids: &[u32], length: usize) -> Result<(), String> {
    if ids.len() != length {
        return Err(format!("{} ids for context length {length}", ids.len()));
    }
    if let Some(id) = ids.iter().find(|&&id| id as usize >= tok.vocab_size()) {
        return Err(format!("id {id} is outside the vocabulary of {}", tok.vocab_size()));
    }
    let end = ids.iter().rposition(|&id| id != 0).ok_or("no end token: every id is 0")?;
    let framed = if length == 1 { ids == [tok.eot()] } else { ids[0] == tok.sot() && ids[end] == tok.eot() };
    if !framed {
        return Err(format!("{ids:?} is not start token, caption, end token, padding"));
    }
    Ok(())
}
