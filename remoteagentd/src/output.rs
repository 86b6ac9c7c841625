//! Batching a session's events into its Redis stream.
//!
//! A runner can print thousands of tiny lines a second; one `XADD` per line
//! would turn that into a flood of Redis calls. The writer gathers text into
//! chunks of up to [`MAX_CHUNK_BYTES`] and sends every pending event in one
//! pipeline when [`FLUSH_BYTES`] are pending or [`FLUSH_AFTER`] has passed
//! since the first unsent byte. While a flush is under way nothing else is
//! read from the runner, so memory stays bounded by about one batch.
//!
//! Nothing is dropped: a failed flush keeps the batch and is retried with
//! backoff until it succeeds or the writer's cancellation token fires.

use std::time::Duration;

use redis::aio::ConnectionManager;
use remoteagent_proto::events::{ChunkPayload, DonePayload, OutputEvent, StreamKind};
use remoteagent_proto::names;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest text of one `chunk` event.
pub const MAX_CHUNK_BYTES: usize = 16 * 1024;
/// Pending text that triggers a flush at once.
pub const FLUSH_BYTES: usize = 16 * 1024;
/// Longest time text waits before it is flushed.
pub const FLUSH_AFTER: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
#[error("output for {key} could not be written: {reason}")]
pub struct OutputError {
    pub key: String,
    pub reason: String,
}

pub struct OutputWriter {
    conn: ConnectionManager,
    key: String,
    /// Events ready to send, in order.
    batch: Vec<OutputEvent>,
    /// Text not yet cut into a chunk, and which stream it came from.
    text: String,
    text_kind: StreamKind,
    /// When the oldest unsent byte arrived.
    since: Option<Instant>,
    next_seq: u64,
    /// Gives up retrying when cancelled (daemon shutting down hard).
    give_up: CancellationToken,
    /// Number of XADD round trips made (for tests and benchmarks).
    pub flushes: u64,
}

impl OutputWriter {
    pub fn new(conn: ConnectionManager, key: String, give_up: CancellationToken) -> Self {
        Self {
            conn,
            key,
            batch: Vec::new(),
            text: String::new(),
            text_kind: StreamKind::Stdout,
            since: None,
            next_seq: 0,
            give_up,
            flushes: 0,
        }
    }

    /// Chunks emitted so far (the `seq` of the next one).
    pub fn chunks(&self) -> u64 {
        self.next_seq
    }

    /// When the pending text must be flushed, if any is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + FLUSH_AFTER)
    }

    /// Adds runner text; flushes when enough is pending.
    pub async fn push_text(&mut self, kind: StreamKind, text: &str) -> Result<(), OutputError> {
        if text.is_empty() {
            return Ok(());
        }
        if kind != self.text_kind {
            self.cut_chunk();
            self.text_kind = kind;
        }
        let mut rest = text;
        while !rest.is_empty() {
            let room = MAX_CHUNK_BYTES - self.text.len();
            let take = floor_char_boundary(rest, room.min(rest.len()));
            // A single character wider than the room left: cut first.
            if take == 0 {
                self.cut_chunk();
                continue;
            }
            self.text.push_str(&rest[..take]);
            rest = &rest[take..];
            if self.text.len() >= MAX_CHUNK_BYTES {
                self.cut_chunk();
            }
        }
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
        if self.pending_bytes() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues a non-text event after all text so far; flushes at once.
    pub async fn event(&mut self, event: OutputEvent) -> Result<(), OutputError> {
        self.cut_chunk();
        self.batch.push(event);
        self.flush().await
    }

    /// Ends the stream with `done` and sets its expiry.
    pub async fn finish(&mut self, mut done: DonePayload) -> Result<(), OutputError> {
        self.cut_chunk();
        done.chunks = self.next_seq;
        self.batch.push(OutputEvent::Done(done));
        self.flush().await?;
        let mut conn = self.conn.clone();
        let res: redis::RedisResult<()> = redis::cmd("EXPIRE")
            .arg(&self.key)
            .arg(names::OUTPUT_STREAM_TTL_SECS)
            .query_async(&mut conn)
            .await;
        if let Err(e) = res {
            // The stream is complete; only its clean-up is late.
            tracing::warn!(key = %self.key, error = %e, "could not set the stream's expiry");
        }
        Ok(())
    }

    fn pending_bytes(&self) -> usize {
        self.text.len()
            + self
                .batch
                .iter()
                .map(|e| match e {
                    OutputEvent::Chunk(c) => c.text.len(),
                    _ => 64,
                })
                .sum::<usize>()
    }

    fn cut_chunk(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.text);
        self.batch.push(OutputEvent::Chunk(ChunkPayload {
            seq: self.next_seq,
            stream: self.text_kind,
            text,
        }));
        self.next_seq += 1;
    }

    /// Sends everything pending in one pipeline, retrying until it lands.
    pub async fn flush(&mut self) -> Result<(), OutputError> {
        self.cut_chunk();
        self.since = None;
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for event in &self.batch {
            let json = serde_json::to_string(event).map_err(|e| OutputError {
                key: self.key.clone(),
                reason: e.to_string(),
            })?;
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(names::OUTPUT_STREAM_MAXLEN)
                .arg("*")
                .arg(names::STREAM_FIELD)
                .arg(json)
                .ignore();
        }
        let mut delay = Duration::from_millis(50);
        loop {
            let mut conn = self.conn.clone();
            match pipe.query_async::<()>(&mut conn).await {
                Ok(()) => {
                    self.flushes += 1;
                    self.batch.clear();
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(key = %self.key, error = %e, retry_in = ?delay, "writing output failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.give_up.cancelled() => {
                            return Err(OutputError { key: self.key.clone(), reason: e.to_string() });
                        }
                    }
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// The largest index ≤ `at` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::floor_char_boundary;

    #[test]
    fn boundaries() {
        let s = "a🦀b";
        assert_eq!(floor_char_boundary(s, 3), 1);
        assert_eq!(floor_char_boundary(s, 5), 5);
        assert_eq!(floor_char_boundary(s, 99), 6);
    }
}
