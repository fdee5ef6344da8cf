//! A temporary folder per thread for the targets that read files: the input
//! is written there and opened by path, as the real readers are used.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

thread_local! {
    // Removed when the thread ends; the campaign runs each target on its own thread.
    static DIR: OnceCell<Result<TempDir, String>> = const { OnceCell::new() };
}

/// This thread's folder, made on first use.
pub fn dir() -> Result<PathBuf, String> {
    DIR.with(|dir| {
        let made = dir.get_or_init(|| {
            tempfile::Builder::new()
                .prefix("reclip-fuzz-")
                .tempdir()
                .map_err(|e| format!("cannot make a temporary folder: {e}"))
        });
        made.as_ref().map(|d| d.path().to_path_buf()).map_err(Clone::clone)
    })
}

/// Writes `bytes` to `name` in this thread's folder and returns its path.
pub fn write(name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    let path = dir()?.join(name);
    write_at(&path, bytes)?;
    Ok(path)
}

pub fn write_at(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
