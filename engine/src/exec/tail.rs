//! A bounded tail of a byte stream: keeps the last N bytes of a command's output or a response body.

use std::collections::VecDeque;

/// The last `cap` bytes written to it, however much is written: memory stays at `cap` bytes even if a
/// command writes gigabytes. [`OutputTail::into_string`] turns it into text of at most `cap` bytes.
#[derive(Debug)]
pub(crate) struct OutputTail {
    buf: VecDeque<u8>,
    cap: usize,
    total: u64,
}

impl OutputTail {
    /// An empty tail that keeps at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            buf: VecDeque::with_capacity(cap),
            cap,
            total: 0,
        }
    }

    /// Appends `bytes`, dropping the oldest bytes beyond the cap.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.total = self.total.saturating_add(bytes.len() as u64);
        // Of a chunk larger than the cap only its own tail can survive.
        let bytes = &bytes[bytes.len().saturating_sub(self.cap)..];
        let overflow = (self.buf.len() + bytes.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow);
        self.buf.extend(bytes);
        debug_assert!(self.buf.len() <= self.cap);
    }

    /// Bytes pushed in all, including those dropped.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The kept bytes as text of at most `cap` bytes: a cut that fell inside a UTF-8 sequence drops the
    /// sequence's remains, and invalid UTF-8 becomes U+FFFD. Replacement characters are 3 bytes, so the text
    /// is trimmed again from the front (at a char boundary) to stay within the cap.
    pub(crate) fn into_string(mut self) -> String {
        let bytes = self.buf.make_contiguous();
        let mut start = 0;
        if self.total > bytes.len() as u64 {
            // The front was cut: skip at most 3 continuation bytes (a UTF-8 sequence is at most 4 bytes long).
            while start < bytes.len().min(3) && is_continuation(bytes[start]) {
                start += 1;
            }
        }
        let text = String::from_utf8_lossy(&bytes[start..]);
        if text.len() <= self.cap {
            return text.into_owned();
        }
        let mut cut = text.len() - self.cap;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text[cut..].to_owned()
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}
