//! Incremental UTF-8 decoding of pipe reads. A read can end in the middle
//! of a multi-byte character; the incomplete tail is carried to the next
//! read so no character is ever split across two chunks. Invalid bytes
//! become U+FFFD, as with `String::from_utf8_lossy`.

#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes as much of `pending + bytes` as is complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::with_capacity(self.pending.len());
        let mut start = 0;
        while start < self.pending.len() {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // Safe: from_utf8 vouched for this prefix.
                    out.push_str(&String::from_utf8_lossy(&self.pending[start..valid]));
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start = valid + n;
                        }
                        None => {
                            // An incomplete character at the end: keep it.
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// Whatever is left at end of file (an incomplete character → U+FFFD).
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_are_joined() {
        let text = "héllo — ✓ 🦀";
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let mut d = Utf8Stream::new();
            let mut out = d.push(&bytes[..cut]);
            out += &d.push(&bytes[cut..]);
            out += &d.finish();
            assert_eq!(out, text, "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let text = "a🦀b✓";
        let mut d = Utf8Stream::new();
        let mut out = String::new();
        for b in text.as_bytes() {
            out += &d.push(std::slice::from_ref(b));
        }
        assert_eq!(out + &d.finish(), text);
    }

    #[test]
    fn invalid_bytes_become_replacement() {
        let mut d = Utf8Stream::new();
        assert_eq!(d.push(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(d.push(b"\xe2\x9c"), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
