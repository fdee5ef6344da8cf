//! The rule-based part of ftfy's `fix_text`, which open_clip runs on every caption before anything
//! else. Each rule here is a fixed character mapping, so it can be reproduced exactly.
//!
//! Not reproduced, because it is a heuristic that no Rust crate implements: ftfy's mojibake repair
//! (`fix_encoding`: re-decoding text such as "cafÃ©" as UTF-8, with `restore_byte_a0`,
//! `replace_lossy_sequences` and `decode_inconsistent_utf8`). Captions with mojibake are therefore
//! tokenized as they are written.

use std::borrow::Cow;

use htmlize::{ENTITIES, unescape};
use reclip_core::{Error, Result};
use regex::{Captures, Regex};
use unicode_normalization::UnicodeNormalization;

pub(crate) struct TextFixer {
    terminal_escape: Regex,
    entity: Regex,
}

impl TextFixer {
    pub(crate) fn new() -> Result<Self> {
        let compile = |what, pattern| {
            Regex::new(pattern).map_err(|e| Error::invalid("TextFixer::new", format!("{what} pattern: {e}")))
        };
        Ok(Self {
            terminal_escape: compile("terminal escape", r"\x1b\[[0-9;]*[A-Za-z]")?,
            entity: compile("HTML entity", r"&#?[0-9A-Za-z]{1,24};")?,
        })
    }

    pub(crate) fn fix(&self, text: &str) -> String {
        // ftfy fixes each line (ending after its '\n') on its own. It decodes HTML entities only
        // while no line so far has contained '<', on the theory that text with tags is real HTML
        // whose entities are meant literally; the switch stays off for the lines that follow.
        let mut fixed = String::with_capacity(text.len());
        let mut unescape_html = true;
        for line in text.split_inclusive('\n') {
            unescape_html &= !line.contains('<');
            fixed.push_str(&self.fix_line(line, unescape_html));
        }
        fixed
    }

    fn fix_line(&self, line: &str, unescape_html: bool) -> String {
        let mut text = line.to_owned();
        // ftfy repeats its fixes until the text stops changing (so nested escapes such as
        // "&amp;amp;" are decoded all the way). Decoding shortens the text and the other rules
        // are idempotent, so this ends.
        loop {
            let before = text.clone();
            if unescape_html {
                text = self.entity.replace_all(&text, |m: &Captures| decode_entity(&m[0]).into_owned()).into_owned();
            }
            text = map_characters(&text);
            text = self.terminal_escape.replace_all(&text, "").into_owned();
            text.retain(|c| !is_unintended_control(c));
            text = text.nfc().collect();
            if text == before {
                return text;
            }
        }
    }
}

/// ftfy decodes only complete references ending in ';', so that informal text such as "this&not
/// that" stays as written; it also reads all-caps names of lowercase entities ("P&EACUTE;REZ").
/// Anything else is left for open_clip's two HTML passes.
fn decode_entity(entity: &str) -> Cow<'_, str> {
    let expansion = |key: &str| ENTITIES.get(key.as_bytes()).and_then(|e| std::str::from_utf8(e).ok());
    if let Some(decoded) = expansion(entity) {
        return Cow::Borrowed(decoded);
    }
    if entity.starts_with("&#") {
        let decoded = unescape(entity);
        // A reference that decodes only in part ("&#12ab;") stays whole.
        return if decoded.contains(';') { Cow::Borrowed(entity) } else { decoded };
    }
    let all_caps = entity == entity.to_ascii_uppercase() && unescape(entity) == entity;
    match expansion(&entity.to_ascii_lowercase()) {
        Some(decoded) if all_caps => Cow::Owned(decoded.to_uppercase()),
        _ => Cow::Borrowed(entity),
    }
}

/// Control characters that ftfy deletes: C0 controls other than tab, line feed, form feed and
/// carriage return; DEL; the deprecated Arabic format controls; the byte order mark; interlinear
/// annotation marks and the object replacement character.
pub(crate) fn is_unintended_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{e}'..='\u{1f}' | '\u{7f}' | '\u{206a}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffc}')
}

/// ftfy's character mappings, in its order: C1 controls, Latin ligatures, character width, quotes.
fn map_characters(text: &str) -> String {
    let mut mapped = String::with_capacity(text.len());
    for c in text.chars().map(c1_control_as_windows_1252) {
        match latin_ligature_letters(c) {
            Some(letters) => mapped.extend(letters.chars().map(standard_width).map(uncurl_quote)),
            None => mapped.push(uncurl_quote(standard_width(c))),
        }
    }
    mapped
}

/// C1 control characters (U+0080..U+009F) in text are almost always bytes of Windows-1252 text
/// read as Latin-1: ftfy reads them as Windows-1252, keeping the five bytes that code page leaves
/// undefined. The HTML spec maps numeric references to C1 controls through the same table.
fn c1_control_as_windows_1252(c: char) -> char {
    if !('\u{80}'..='\u{9f}').contains(&c) {
        return c;
    }
    let decoded = unescape(format!("&#{};", u32::from(c)));
    let mut chars = decoded.chars();
    match (chars.next(), chars.next()) {
        (Some(single), None) => single,
        _ => c,
    }
}

/// Latin ligatures and digraphs (which appear in text through copy-and-paste glitches) as the
/// letters they stand for. Ligatures of other scripts are left alone, as ftfy does.
fn latin_ligature_letters(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "\u{2bc}n",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// Fullwidth and halfwidth forms (U+FF01..U+FFEF) as their ordinary characters, and the ideographic
/// space as a plain space. Every form in that block is a single character under NFKC.
fn standard_width(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{ff01}'..='\u{ffef}' => {
            let mut normal = std::iter::once(c).nfkc();
            match (normal.next(), normal.next()) {
                (Some(single), None) => single,
                _ => c,
            }
        }
        _ => c,
    }
}

fn uncurl_quote(c: char) -> char {
    match c {
        '\u{2bc}' | '\u{2018}'..='\u{201b}' => '\'',
        '\u{201c}'..='\u{201f}' => '"',
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(text: &str) -> String {
        TextFixer::new().unwrap().fix(text)
    }

    #[test]
    fn entities_are_decoded_until_no_line_has_had_a_tag() {
        assert_eq!(fix("a &amp;amp;amp; b\n&lt;i&gt;\n"), "a & b\n<i>\n");
        assert_eq!(
            fix("P&EACUTE;REZ &SZLIG; &AMP; this&not that &#12ab; &#x41;"),
            "PÉREZ SS & this&not that &#12ab; A"
        );
        assert_eq!(fix("<i> &amp;amp;\nnext &amp;\n"), "<i> &amp;amp;\nnext &amp;\n");
    }

    #[test]
    fn character_rules() {
        assert_eq!(fix("\u{2018}o\u{fb03}ce\u{2019} ＡＢ\u{3000}ｶ \u{149}"), "'office' AB カ 'n");
        assert_eq!(fix("\x1b[1;31mred\x1b[0m\u{feff}\u{7}"), "red");
        assert_eq!(fix("Cafe\u{301}"), "Caf\u{e9}");
        assert_eq!(fix("\u{80}5 \u{93}hi\u{94} \u{81}"), "\u{20ac}5 \"hi\" \u{81}");
    }
}
