//! Prompt templates for zero-shot classification: `{}` stands for the class name.

use crate::{Error, Result, read_text_file};
use std::path::Path;

/// The default prompt: the single template that open_clip's zero-shot
/// templates are built around. Longer ensembles can be read from a file.
pub const DEFAULT_TEMPLATES: &[&str] = &["a photo of a {}."];

/// Replaces every `{}` in `template` with `class`.
pub fn fill_template(template: &str, class: &str) -> String {
    template.replace("{}", class)
}

/// Reads templates from a text file (see [`read_text_file`]), one per line;
/// blank lines are skipped and every other line must contain `{}`.
pub fn read_templates(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    let text = read_text_file(path)?;
    let mut templates = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !line.contains("{}") {
            return Err(Error::format(
                path,
                format!("line {}: template {line:?} has no {{}} for the class name", i + 1),
            ));
        }
        templates.push(line.to_string());
    }
    if templates.is_empty() {
        return Err(Error::format(path, "no templates"));
    }
    Ok(templates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.txt");
        std::fs::write(&good, "a photo of a {}.\n\n  a drawing of the {}.  \n").unwrap();
        assert_eq!(read_templates(&good).unwrap(), vec!["a photo of a {}.", "a drawing of the {}."]);
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, "a photo of a {}.\nno placeholder\n").unwrap();
        let err = read_templates(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.txt") && err.contains("line 2"), "{err}");
        assert_eq!(fill_template(DEFAULT_TEMPLATES[0], "red circle"), "a photo of a red circle.");
    }

    #[test]
    fn a_templates_file_that_is_not_a_regular_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_templates(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&dir.path().display().to_string()) && err.contains("not a regular file (a folder)"),
            "{err}"
        );
        let fifo = dir.path().join("templates.fifo");
        if crate::files::make_fifo(&fifo).is_some() {
            let err = read_templates(&fifo).unwrap_err().to_string();
            assert!(err.contains("templates.fifo: not a regular file (a FIFO)"), "{err}");
        }
    }
}
