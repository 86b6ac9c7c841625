//! The NDJSON framing: one JSON message per line, lines capped at
//! [`MAX_LINE_BYTES`] so neither end buffers without bound.

use bytes::BytesMut;
use remoteagent_proto::control::{HelloRequest, PROTOCOL_VERSION, Request};
use serde::Serialize;
use tokio_util::codec::{Decoder, Encoder, LinesCodec, LinesCodecError};

pub use remoteagent_proto::control::MAX_LINE_BYTES;

/// The line codec both ends use: a longer line is an error
/// (`LinesCodecError::MaxLineLengthExceeded`), not a bigger buffer.
pub fn lines() -> Ndjson {
    Ndjson(LinesCodec::new_with_max_length(MAX_LINE_BYTES))
}

/// One decoded line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// A line that is not UTF-8 (so not JSON). It is a value, not an error:
    /// after an error a `FramedRead` ends, and one bad line must not cost
    /// the connection.
    NotUtf8,
}

/// `LinesCodec` (cap, `\r\n` tolerated, a last line without newline
/// counted) with non-UTF-8 lines passed on as [`Line::NotUtf8`].
#[derive(Debug, Clone)]
pub struct Ndjson(LinesCodec);

fn not_utf8(
    decoded: Result<Option<String>, LinesCodecError>,
) -> Result<Option<Line>, LinesCodecError> {
    match decoded {
        Ok(line) => Ok(line.map(Line::Text)),
        // LinesCodec has consumed the line before checking it.
        Err(LinesCodecError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Ok(Some(Line::NotUtf8))
        }
        Err(e) => Err(e),
    }
}

impl Decoder for Ndjson {
    type Item = Line;
    type Error = LinesCodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, LinesCodecError> {
        not_utf8(self.0.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, LinesCodecError> {
        not_utf8(self.0.decode_eof(buf))
    }
}

impl Encoder<String> for Ndjson {
    type Error = LinesCodecError;

    fn encode(&mut self, line: String, buf: &mut BytesMut) -> Result<(), LinesCodecError> {
        self.0.encode(line, buf)
    }
}

/// One message as a line, newline included (for writers that do not go
/// through [`lines`], like the blocking client).
pub fn encode_line<T: Serialize>(message: &T) -> serde_json::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    Ok(line)
}

/// The first request on every connection.
pub fn hello() -> Request {
    Request::Hello(HelloRequest {
        protocol: PROTOCOL_VERSION,
        client_version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio_util::codec::FramedRead;

    fn small() -> Ndjson {
        Ndjson(LinesCodec::new_with_max_length(10))
    }

    #[tokio::test]
    async fn lines_and_cap() {
        let data: &[u8] = b"one\n\xff\xfe\ntwo\nthis line is too long\nlast";
        let mut r = FramedRead::new(data, small());
        assert_eq!(r.next().await.unwrap().unwrap(), Line::Text("one".into()));
        assert_eq!(r.next().await.unwrap().unwrap(), Line::NotUtf8);
        assert_eq!(r.next().await.unwrap().unwrap(), Line::Text("two".into()));
        assert!(matches!(
            r.next().await.unwrap(),
            Err(LinesCodecError::MaxLineLengthExceeded)
        ));
    }

    #[tokio::test]
    async fn a_last_line_without_newline_counts() {
        let data: &[u8] = b"last";
        let mut r = FramedRead::new(data, small());
        assert_eq!(r.next().await.unwrap().unwrap(), Line::Text("last".into()));
        assert!(r.next().await.is_none());
    }

    #[test]
    fn encoded_lines_end_in_one_newline() {
        let line = encode_line(&hello()).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
