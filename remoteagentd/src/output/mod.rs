//! Batching a session's events into its Redis stream.
//!
//! A runner can print thousands of tiny lines a second; one `XADD` per line
//! would turn that into a flood of Redis calls. The writer gathers text into
//! chunks of up to [`MAX_CHUNK_BYTES`] and sends every pending event in one
//! pipeline when [`FLUSH_BYTES`] are pending or [`FLUSH_AFTER`] has passed
//! since the first unsent byte.
//!
//! A flush is handed to a sender task, so the session keeps reading the
//! runner while the pipeline travels to Redis. At most one batch is in
//! flight: the next flush waits for it first, so batches land in order and
//! memory stays bounded by about two batches; a runner faster than Redis
//! is slowed down by its full pipe, not buffered.
//!
//! Nothing is dropped: a failed flush keeps the batch and is retried with
//! backoff until it succeeds or the writer's cancellation token fires; a
//! retry takes the agent's current connection (see [`SharedConn`]).
//!
//! Nothing is written twice either: every entry gets an id chosen here,
//! strictly increasing, and keeps it across retries. If Redis applied a
//! batch but its reply was lost (a timeout, a crash between write and
//! reply), the retry's `XADD`s are refused as "equal or smaller than the
//! top item", which this writer reads as "already written", so readers
//! never see a `seq` twice.
//!
//! A session writes at most its byte budget of chunk text into the stream
//! ([`OutputWriter::set_budget`], `[output] stream_budget_mb`): one runaway
//! session must not fill Redis (streams live a day) nor the cloud. Past it,
//! one `notice` says where the whole output is (the local log keeps it),
//! later text takes no `seq` (it is not lost, so no reader may report a
//! gap) and is only counted, into `done.withheld_bytes`.

use std::time::Duration;

use redis::aio::ConnectionLike;
use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::events::{
    ChunkPayload, DonePayload, NoticePayload, OutputEvent, StreamKind,
};
use remoteagent_proto::{names, stream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::redis_conn::SharedConn;
use crate::util::time::sleep_unless_cancelled;

pub mod answer;

/// Largest text of one `chunk` event. Large enough that a fast runner
/// costs few stream entries (the stream keeps at most
/// `OUTPUT_STREAM_MAXLEN` of them), small enough to stay far below Redis's
/// and the forwarder's per-entry comfort.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;
/// Pending text that triggers a flush at once: one Redis round trip per
/// this many bytes when the runner is fast.
pub const FLUSH_BYTES: usize = 256 * 1024;
/// Longest time text waits before it is flushed.
pub const FLUSH_AFTER: Duration = Duration::from_millis(20);
/// Waits between attempts of a batch that failed (no attempt limit: the
/// writer's cancellation token ends the retries).
const WRITE_RETRY: Backoff =
    Backoff::new(Duration::from_millis(50), Duration::from_secs(2)).without_jitter();
/// Chunk text a session writes into its stream unless configured.
pub const DEFAULT_STREAM_BUDGET: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("output for {key} could not be written: {reason}")]
pub struct OutputError {
    pub key: String,
    pub reason: String,
}

pub struct OutputWriter {
    conn: SharedConn,
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
    /// Number of XADD round trips made (for tests and benchmarks); counts
    /// the batch in flight once it has landed.
    pub flushes: u64,
    /// The id of the last entry handed to the sender.
    last_id: EntryId,
    /// The batch being written, if any: its sender reports the outcome and
    /// how many round trips it took.
    in_flight: Option<JoinHandle<(Result<(), String>, u64)>>,
    budget: Budget,
}

/// The byte budget of the stream's chunks.
struct Budget {
    limit: u64,
    /// Chunk text taken for the stream so far.
    used: u64,
    /// Text kept out of the stream once `limit` was reached.
    withheld: u64,
    /// Where the notice tells the user to look for the rest.
    where_to_find: String,
    notice_queued: bool,
}

impl Budget {
    /// The part of `text` that still fits (cut on a character boundary);
    /// the rest is counted as withheld.
    fn take<'t>(&mut self, text: &'t str) -> &'t str {
        let room = self.limit.saturating_sub(self.used);
        let fits = if (text.len() as u64) <= room {
            text.len()
        } else {
            text.floor_char_boundary(room as usize)
        };
        self.used += fits as u64;
        self.withheld += (text.len() - fits) as u64;
        &text[..fits]
    }

    fn notice(&self) -> String {
        const MB: u64 = 1024 * 1024;
        let size = if self.limit.is_multiple_of(MB) {
            format!("{} MB", self.limit / MB)
        } else {
            format!("{} bytes", self.limit)
        };
        format!(
            "⚠️ Output past {size} is not sent to Telegram; the whole output is in this computer's log: {}",
            self.where_to_find
        )
    }
}

/// A stream entry id `ms-n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct EntryId(u64, u64);

impl EntryId {
    /// The next id: the current time when it has moved on, else the same
    /// millisecond with the next sequence number, so ids only ever grow,
    /// even if the clock goes back.
    fn next(self, now_ms: u64) -> EntryId {
        if now_ms > self.0 {
            EntryId(now_ms, 0)
        } else {
            EntryId(self.0, self.1 + 1)
        }
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// Writes `entries` (each a capped `XADD` with its id, built by
/// [`stream::xadd`]) in one pipeline. Returns how many of them
/// are now in the stream, counted from the first; an error names what
/// failed. An entry refused because its id is not above the stream's top
/// was written by an earlier attempt whose reply was lost.
async fn send_entries<C: ConnectionLike + Send>(
    conn: &mut C,
    entries: &[stream::Command],
) -> Result<usize, String> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for cmd in entries {
        pipe.cmd(&cmd[0]).arg(&cmd[1..]);
    }
    let results: Vec<redis::RedisResult<redis::Value>> =
        pipe.query_async(conn).await.map_err(|e| e.to_string())?;
    let mut written = 0;
    for result in &results {
        match result {
            Ok(_) => written += 1,
            Err(e) if e.to_string().contains("equal or smaller") => written += 1,
            Err(e) => return Err(format!("{} entries written, then: {e}", written)),
        }
    }
    if written < entries.len() {
        return Err(format!(
            "{written} of {} entries acknowledged",
            entries.len()
        ));
    }
    Ok(written)
}

/// The sender task of one batch: encodes it, then writes it until it lands
/// or `give_up` fires. Returns the outcome and the round trips made.
async fn send_batch(
    conn: SharedConn,
    key: String,
    events: Vec<(EntryId, OutputEvent)>,
    give_up: CancellationToken,
) -> (Result<(), String>, u64) {
    let mut entries = Vec::with_capacity(events.len());
    for (id, event) in events {
        match stream::encode(&event) {
            Ok(json) => entries.push(stream::xadd(&key, &id.to_string(), json)),
            Err(e) => return (Err(format!("encoding an event: {e}")), 0),
        }
    }
    let mut attempts = 0;
    let mut backoff = WRITE_RETRY;
    loop {
        // The current connection on every attempt: the agent may have
        // replaced one that stopped working.
        let mut c = conn.get();
        attempts += 1;
        let sent = tokio::select! {
            r = send_entries(&mut c, &entries) => r,
            () = give_up.cancelled() => Err("given up while writing".to_string()),
        };
        let e = match sent {
            Ok(_) => return (Ok(()), attempts),
            Err(e) => e,
        };
        if give_up.is_cancelled() {
            return (Err(e), attempts);
        }
        // Retries until it lands or `give_up` fires: there is no last attempt.
        let Some(delay) = backoff.next_delay() else {
            return (Err(e), attempts);
        };
        tracing::warn!(key = %key, error = %e, retry_in = ?delay, "writing output failed; retrying");
        if !sleep_unless_cancelled(delay, &give_up).await {
            return (Err(e), attempts);
        }
    }
}

impl OutputWriter {
    pub fn new(conn: impl Into<SharedConn>, key: String, give_up: CancellationToken) -> Self {
        Self {
            conn: conn.into(),
            key,
            batch: Vec::new(),
            text: String::new(),
            text_kind: StreamKind::Stdout,
            since: None,
            next_seq: 0,
            give_up,
            flushes: 0,
            last_id: EntryId(0, 0),
            in_flight: None,
            budget: Budget {
                limit: DEFAULT_STREAM_BUDGET,
                used: 0,
                withheld: 0,
                where_to_find: "remoteagentctl logs".into(),
                notice_queued: false,
            },
        }
    }

    /// Sets the most chunk text written to the stream, and how the notice
    /// written when it is reached tells where the rest is (a command).
    pub fn set_budget(&mut self, limit: u64, where_to_find: String) {
        self.budget.limit = limit;
        self.budget.where_to_find = where_to_find;
    }

    /// Bytes of text kept out of the stream by the budget so far.
    pub fn withheld_bytes(&self) -> u64 {
        self.budget.withheld
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
        let kept = self.budget.take(text);
        if !kept.is_empty() {
            self.queue_text(kind, kept);
        }
        if self.budget.withheld > 0 && !self.budget.notice_queued {
            // Right after the last chunk that fits, and sent at once.
            self.budget.notice_queued = true;
            tracing::warn!(key = %self.key, limit = self.budget.limit, "the session's output reached its stream budget; the rest stays in the local log");
            self.cut_chunk();
            self.batch.push(OutputEvent::Notice(NoticePayload {
                text: self.budget.notice(),
            }));
            return self.flush().await;
        }
        if self.pending_bytes() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Adds text (within the budget) to the pending chunks.
    fn queue_text(&mut self, kind: StreamKind, text: &str) {
        if kind != self.text_kind {
            self.cut_chunk();
            self.text_kind = kind;
        }
        let mut rest = text;
        while !rest.is_empty() {
            let room = MAX_CHUNK_BYTES - self.text.len();
            let take = rest.floor_char_boundary(room.min(rest.len()));
            // A single character wider than the room left: cut first.
            if take == 0 {
                self.cut_chunk();
                continue;
            }
            if self.text.is_empty() {
                // Room for a whole chunk at once: no regrowth while filling.
                self.text.reserve(MAX_CHUNK_BYTES.min(rest.len().max(1024)));
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
    }

    /// Queues a non-text event after all text so far and hands everything
    /// to the sender at once (it is written in order with the rest).
    pub async fn event(&mut self, event: OutputEvent) -> Result<(), OutputError> {
        self.cut_chunk();
        self.batch.push(event);
        self.flush().await
    }

    /// Ends the stream with `done`, waits until everything is written, and
    /// sets the stream's expiry.
    pub async fn finish(&mut self, mut done: DonePayload) -> Result<(), OutputError> {
        self.cut_chunk();
        done.chunks = self.next_seq;
        done.withheld_bytes = self.budget.withheld;
        self.batch.push(OutputEvent::Done(done));
        self.sync().await?;
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

    /// Hands everything pending to the sender as one pipeline, after the
    /// batch already in flight (if any) has landed. Returns without waiting
    /// for this one; [`OutputWriter::sync`] does.
    pub async fn flush(&mut self) -> Result<(), OutputError> {
        self.cut_chunk();
        self.since = None;
        if self.batch.is_empty() {
            return Ok(());
        }
        // Ids are fixed here, once, so that every retry resends the same ones.
        let now = remoteagent_proto::now_ms();
        let mut events = Vec::with_capacity(self.batch.len());
        for event in self.batch.drain(..) {
            self.last_id = self.last_id.next(now);
            events.push((self.last_id, event));
        }
        self.wait_in_flight().await?;
        self.in_flight = Some(tokio::spawn(send_batch(
            self.conn.clone(),
            self.key.clone(),
            events,
            self.give_up.clone(),
        )));
        Ok(())
    }

    /// Sends everything pending and waits until all of it is in the stream.
    pub async fn sync(&mut self) -> Result<(), OutputError> {
        self.flush().await?;
        self.wait_in_flight().await
    }

    async fn wait_in_flight(&mut self) -> Result<(), OutputError> {
        let Some(task) = self.in_flight.take() else {
            return Ok(());
        };
        let (result, attempts) = match task.await {
            Ok(r) => r,
            Err(e) => (Err(format!("the output sender ended: {e}")), 0),
        };
        self.flushes += attempts;
        result.map_err(|reason| OutputError {
            key: self.key.clone(),
            reason,
        })
    }
}

impl Drop for OutputWriter {
    fn drop(&mut self) {
        // A writer dropped without `finish` (its session's future was
        // cancelled) must not leave a sender retrying in the background.
        if let Some(task) = self.in_flight.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
