//! open_clip's default caption cleaning ("lower"): ftfy, HTML unescaping twice, whitespace
//! collapsed to single spaces, ends stripped, lowercase.

use htmlize::unescape;
use reclip_core::Result;

use crate::fix_text::{TextFixer, is_unintended_control};

pub struct TextCleaner {
    fixer: TextFixer,
}

impl TextCleaner {
    pub fn new() -> Result<Self> {
        Ok(Self { fixer: TextFixer::new()? })
    }

    /// The text that the BPE sees for `text`.
    pub fn clean(&self, text: &str) -> String {
        let fixed = self.fixer.fix(text);
        let mut unescaped = unescape(unescape(fixed)).into_owned();
        // Python's html.unescape drops references to C0 control characters ("&#1;" becomes ""), where
        // htmlize follows the HTML spec and keeps them. ftfy has already deleted the literal ones,
        // so any left here came from a reference.
        unescaped.retain(|c| !is_unintended_control(c));
        // Python splits on U+001C..U+001F as well as on Unicode white space, but those were deleted
        // just above, so the two definitions of white space agree on what is left.
        let mut collapsed = String::with_capacity(unescaped.len());
        for word in unescaped.split_whitespace() {
            if !collapsed.is_empty() {
                collapsed.push(' ');
            }
            collapsed.push_str(word);
        }
        collapsed.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(text: &str) -> String {
        TextCleaner::new().unwrap().clean(text)
    }

    #[test]
    fn whitespace_collapses_and_case_folds() {
        assert_eq!(clean("  A\t\tB\r\nC\u{a0}D\u{3000}\u{2003}E  "), "a b c d e");
        assert_eq!(clean(" \n\t "), "");
        assert_eq!(clean("ΟΔΥΣΣΕΥΣ İ"), "οδυσσευς i\u{307}");
    }

    #[test]
    fn html_is_unescaped_twice_after_ftfy() {
        // After a line with '<', ftfy leaves entities alone and open_clip's two passes remain.
        assert_eq!(clean("< &amp;amp;amp;"), "< &amp;");
        assert_eq!(clean("&lt;b&gt; &#39; &#x1F600; &#1;x"), "<b> ' \u{1f600} x");
    }
}
