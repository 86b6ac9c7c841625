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
mod tests {
    use super::*;
    use redis::aio::ConnectionManager;
    use remoteagent_testkit::RedisServer;

    #[test]
    fn entry_ids_only_grow() {
        assert_eq!(EntryId(0, 0).next(100), EntryId(100, 0));
        assert_eq!(EntryId(100, 0).next(100), EntryId(100, 1));
        // The clock went back: the id still grows.
        assert_eq!(EntryId(100, 1).next(7), EntryId(100, 2));
        assert_eq!(EntryId(100, 2).to_string(), "100-2");
    }

    async fn xlen(conn: &mut ConnectionManager, key: &str) -> usize {
        redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
    }

    #[tokio::test]
    async fn a_batch_sent_again_after_a_lost_reply_is_not_duplicated() {
        let server = RedisServer::start().unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = ConnectionManager::new(client).await.unwrap();
        let key = "output:a:s";
        let entry =
            |key: &str, id: EntryId, json: &str| stream::xadd(key, &id.to_string(), json.into());
        let entries: Vec<stream::Command> = (0..3)
            .map(|i| entry(key, EntryId(1000, i), &format!("{{\"n\":{i}}}")))
            .collect();
        assert_eq!(send_entries(&mut conn, &entries).await.unwrap(), 3);
        // The same batch again, as after a reply that never arrived.
        assert_eq!(send_entries(&mut conn, &entries).await.unwrap(), 3);
        assert_eq!(xlen(&mut conn, key).await, 3);
        // A retry whose first part was written and whose rest was not.
        let mut more = entries[2..].to_vec();
        more.push(entry(key, EntryId(1000, 3), "{}"));
        more.push(entry(key, EntryId(1001, 0), "{}"));
        assert_eq!(send_entries(&mut conn, &more).await.unwrap(), 3);
        assert_eq!(xlen(&mut conn, key).await, 5);
        // A real failure is reported, not taken for success.
        let () = redis::cmd("SET")
            .arg("not-a-stream")
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            send_entries(&mut conn, &[entry("not-a-stream", EntryId(1000, 0), "{}")])
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_writer_keeps_seq_and_ids_in_order_across_flushes() {
        let server = RedisServer::start().unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = ConnectionManager::new(client).await.unwrap();
        let key = "output:a:s2".to_string();
        let mut writer = OutputWriter::new(conn.clone(), key.clone(), CancellationToken::new());
        for i in 0..50 {
            writer
                .push_text(StreamKind::Stdout, &format!("line {i}\n"))
                .await
                .unwrap();
            writer.flush().await.unwrap();
        }
        writer
            .finish(DonePayload {
                status: remoteagent_proto::events::DoneStatus::Ok,
                exit_code: Some(0),
                duration_ms: 1,
                message: None,
                chunks: 0,
                withheld_bytes: 0,
            })
            .await
            .unwrap();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(reply.ids.len(), 51);
        let mut text = String::new();
        for (i, entry) in reply.ids.iter().enumerate() {
            let json: String = entry.get(names::STREAM_FIELD).unwrap();
            match serde_json::from_str::<OutputEvent>(&json).unwrap() {
                OutputEvent::Chunk(c) => {
                    assert_eq!(c.seq, i as u64);
                    text.push_str(&c.text);
                }
                OutputEvent::Done(d) => assert_eq!(d.chunks, 50),
                other => panic!("{other:?}"),
            }
        }
        let expected: String = (0..50).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_is_batched_and_arrives_whole_and_in_order() {
        let server = RedisServer::start().unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = ConnectionManager::new(client).await.unwrap();
        let key = "output:a:flood".to_string();
        let mut writer = OutputWriter::new(conn.clone(), key.clone(), CancellationToken::new());
        // 3 MB in pipe-sized pieces with lines of varying length and
        // multi-byte characters, so chunk cuts fall anywhere.
        let mut expected = String::new();
        let mut piece = String::new();
        for i in 0..40_000 {
            piece.push_str(&format!("line {i} {}é\n", "x".repeat(i % 120)));
            if piece.len() >= 60_000 {
                writer.push_text(StreamKind::Stdout, &piece).await.unwrap();
                expected.push_str(&piece);
                piece.clear();
            }
        }
        writer.push_text(StreamKind::Stdout, &piece).await.unwrap();
        expected.push_str(&piece);
        writer
            .push_text(StreamKind::Stderr, "warning\n")
            .await
            .unwrap();
        writer
            .finish(DonePayload {
                status: remoteagent_proto::events::DoneStatus::Ok,
                exit_code: Some(0),
                duration_ms: 1,
                message: None,
                chunks: 0,
                withheld_bytes: 0,
            })
            .await
            .unwrap();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut stdout = String::new();
        let mut stderr = String::new();
        let mut next_seq = 0;
        let mut done = None;
        for entry in &reply.ids {
            let json: String = entry.get(names::STREAM_FIELD).unwrap();
            match serde_json::from_str::<OutputEvent>(&json).unwrap() {
                OutputEvent::Chunk(c) => {
                    assert_eq!(c.seq, next_seq, "seq out of order");
                    assert!(c.text.len() <= MAX_CHUNK_BYTES);
                    next_seq += 1;
                    match c.stream {
                        StreamKind::Stdout => stdout.push_str(&c.text),
                        StreamKind::Stderr => stderr.push_str(&c.text),
                    }
                }
                OutputEvent::Done(d) => done = Some(d),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(stdout, expected);
        assert_eq!(stderr, "warning\n");
        assert_eq!(done.unwrap().chunks, next_seq);
        assert!(matches!(
            serde_json::from_str::<OutputEvent>(
                &reply
                    .ids
                    .last()
                    .unwrap()
                    .get::<String>(names::STREAM_FIELD)
                    .unwrap()
            )
            .unwrap(),
            OutputEvent::Done(_)
        ));
        // Batched: far fewer round trips than chunks.
        assert!(
            writer.flushes * 2 < next_seq,
            "{} round trips for {next_seq} chunks",
            writer.flushes
        );
    }

    #[test]
    fn the_budget_cuts_on_a_character_and_counts_the_rest() {
        let mut budget = Budget {
            limit: 4,
            used: 0,
            withheld: 0,
            where_to_find: "remoteagentctl logs proj".into(),
            notice_queued: false,
        };
        assert_eq!(budget.take("ab"), "ab");
        // "é" is two bytes: one byte of room left after "c" cannot hold it.
        assert_eq!(budget.take("cé🦀"), "c");
        assert_eq!((budget.used, budget.withheld), (3, 6));
        assert_eq!(budget.take("de"), "d");
        assert_eq!(budget.take("f"), "");
        assert_eq!((budget.used, budget.withheld), (4, 8));
        assert!(budget.notice().ends_with(
            "4 bytes is not sent to Telegram; the whole output is in this computer's log: remoteagentctl logs proj"
        ));
        budget.limit = 64 * 1024 * 1024;
        assert!(
            budget
                .notice()
                .starts_with("⚠️ Output past 64 MB is not sent")
        );
    }
}
