//! The blocking client, for `remoteagentd approval-hook`: a short-lived
//! process that asks one question and must answer before a deadline, so
//! plain std sockets with timeouts rather than a runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use remoteagent_proto::control::{ClientMessage, MAX_LINE_BYTES, Reply, Response};

use crate::codec;
use crate::socket::{NotOurs, check_owner};

/// The id the `hello` sent by [`BlockingClient::connect`] carries; the
/// caller's requests use higher ids.
pub const HELLO_ID: u64 = 1;
/// How long a write may block (the daemon reads as it goes, so this is only
/// reached when it hangs).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BlockingError {
    #[error(transparent)]
    NotOurs(#[from] NotOurs),
    #[error("remoteagentd is not reachable at {}: {source}", socket.display())]
    Unreachable {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to remoteagentd: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding the request: {0}")]
    Encode(#[from] serde_json::Error),
    /// No reply before the deadline.
    #[error("no reply from remoteagentd in time")]
    TimedOut,
    #[error("remoteagentd closed the connection")]
    Closed,
    #[error("remoteagentd sent something unreadable: {0}")]
    Unreadable(serde_json::Error),
}

pub struct BlockingClient {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    line: Vec<u8>,
}

impl BlockingClient {
    /// Checks the socket is ours, connects and sends `hello` (without
    /// waiting for its answer: [`Self::next_before`] checks it).
    pub fn connect(socket: &Path) -> Result<Self, BlockingError> {
        check_owner(socket)?;
        let stream = UnixStream::connect(socket).map_err(|source| BlockingError::Unreachable {
            socket: socket.to_path_buf(),
            source,
        })?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut client = BlockingClient {
            writer,
            reader: BufReader::new(stream),
            line: Vec::new(),
        };
        client.send_line(&codec::encode_line(&ClientMessage {
            id: HELLO_ID,
            request: codec::hello(),
        })?)?;
        Ok(client)
    }

    /// Writes one encoded line (see [`codec::encode_line`]); the caller
    /// keeps it under [`MAX_LINE_BYTES`].
    pub fn send_line(&mut self, line: &[u8]) -> Result<(), BlockingError> {
        self.writer.write_all(line)?;
        Ok(())
    }

    /// The next reply other than the answer to a successful `hello`, read
    /// before `deadline`. Error replies (a refused `hello` included) are
    /// returned as they are.
    pub fn next_before(&mut self, deadline: Instant) -> Result<Reply, BlockingError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BlockingError::TimedOut);
            }
            self.reader.get_ref().set_read_timeout(Some(left))?;
            self.line.clear();
            let read = (&mut self.reader)
                .take(MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut self.line);
            match read {
                Ok(0) => return Err(BlockingError::Closed),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(BlockingError::TimedOut);
                }
                Err(e) => return Err(e.into()),
            }
            let reply: Reply =
                serde_json::from_slice(&self.line).map_err(BlockingError::Unreadable)?;
            if reply.id == HELLO_ID
                && reply.error.is_none()
                && matches!(reply.data, Some(Response::Hello { .. }))
            {
                continue;
            }
            return Ok(reply);
        }
    }
}
