//! Line numbers for byte offsets in a stream being parsed. A line ends at
//! `\n`, `\r\n` or a lone `\r`, as it does for the csv crate and for pandas.
//! The csv crate's own count only sees `\n`, and is taken where a record's
//! leftovers begin (before blank lines, and before the `\n` of a `\r\n`), so
//! it can be lines early; this reader notes where each line break it passes
//! on lies, and answers for any offset the parser has reached.

use std::collections::VecDeque;
use std::io::Read;

/// How far behind the bytes read a question may be. The csv reader reads
/// through a buffer of 8 KiB, so the record it has just parsed ends at most
/// that far back; line breaks further back are only counted, which keeps the
/// memory bounded even for a record that runs over millions of lines.
const WINDOW: u64 = 1 << 20;

pub(crate) struct LineCounter<R> {
    inner: R,
    read: u64,
    /// Line breaks before the offsets in `ahead`.
    counted: u64,
    /// Offsets of the line breaks read within the last [`WINDOW`] bytes, in
    /// order; a `\r\n` is at its `\r`.
    ahead: VecDeque<u64>,
    previous: u8,
}

/// Whether `byte`, after `previous`, ends a line (a `\r\n` ends at its `\r`).
fn ends_line(previous: u8, byte: u8) -> bool {
    byte == b'\r' || (byte == b'\n' && previous != b'\r')
}

/// The line breaks in `text`.
pub(crate) fn line_breaks(text: &str) -> u64 {
    let mut previous = 0;
    let mut breaks = 0;
    for byte in text.bytes() {
        breaks += ends_line(previous, byte) as u64;
        previous = byte;
    }
    breaks
}

impl<R> LineCounter<R> {
    pub fn new(inner: R) -> Self {
        LineCounter { inner, read: 0, counted: 0, ahead: VecDeque::new(), previous: 0 }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The 1-based line that holds byte `offset` (a line break belongs to the
    /// line it ends). Offsets asked about must not decrease.
    pub fn line_of(&mut self, offset: u64) -> u64 {
        self.count_before(offset);
        self.counted + 1
    }

    fn count_before(&mut self, offset: u64) {
        while self.ahead.front().is_some_and(|&at| at < offset) {
            self.ahead.pop_front();
            self.counted += 1;
        }
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &byte in &buf[..n] {
            if ends_line(self.previous, byte) {
                self.ahead.push_back(self.read);
            }
            self.previous = byte;
            self.read += 1;
        }
        self.count_before(self.read.saturating_sub(WINDOW));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_across_reads_and_past_the_window() {
        let text = format!("a\nb\r\n\n{}z", "x\n".repeat(WINDOW as usize));
        let mut counter = LineCounter::new(text.as_bytes());
        let mut sink = [0; 3];
        let mut total = 0;
        let mut lines = Vec::new();
        loop {
            let n = counter.read(&mut sink).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
            if total == 6 {
                lines.extend([0, 1, 2, 3, 5].map(|offset| counter.line_of(offset)));
            }
        }
        assert_eq!(lines, [1, 1, 2, 2, 3]);
        assert!(counter.ahead.len() as u64 <= WINDOW / 2 + 1, "only the window's line breaks are kept");
        assert_eq!(counter.line_of(total - 1), WINDOW + 4, "the last line, after the window moved on");
        assert!(counter.ahead.is_empty());
    }

    #[test]
    fn every_kind_of_line_break_counts_once() {
        assert_eq!(line_breaks("a\nb\r\nc\rd\n\r\n"), 5);
        assert_eq!(line_breaks("no break"), 0);
    }
}
