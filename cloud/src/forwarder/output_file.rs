//! The output file of a session whose output was not all shown live: the
//! whole stream read back (XRANGE, in small batches so memory stays bounded
//! in a flood) into a temporary file, cut at Telegram's upload limit on a
//! character boundary.

use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamId, StreamRangeReply};
use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::events::{DonePayload, OutputEvent};
use tokio::io::AsyncWriteExt;

use super::Ctx;
use super::entry::parse_entry;
use super::own_conn::OwnConn;
use super::pager::OutputFile;
use crate::telegram::DocumentSource;

/// Entries read at once: chunks are up to 64 KiB, so a batch stays within a
/// few MiB.
const FILE_BATCH: usize = 32;
/// Attempts at reading one batch of the stream, a second apart.
const READ_ATTEMPTS: u32 = 5;
const READ_PAUSE: Duration = Duration::from_secs(1);

/// The chunks of `stream` up to `last_id` (the `done` entry), in order,
/// written to a temporary file up to `cap` bytes.
pub(super) async fn build(
    ctx: &Arc<Ctx>,
    conn: &mut Option<OwnConn>,
    stream: &str,
    done: &DonePayload,
    last_id: &str,
    cap: u64,
) -> Result<OutputFile, String> {
    let (file, path) = tempfile::Builder::new()
        .prefix("remoteagent-output-")
        .suffix(".txt")
        .tempfile()
        .map_err(|e| format!("creating a temporary file: {e}"))?
        .into_parts();
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    let (mut written, mut total, mut lost) = (0u64, 0u64, 0u64);
    let mut next_seq = 0u64;
    let mut start = "-".to_string();
    loop {
        let batch = read_range(ctx, conn, stream, &start, last_id).await?;
        let n = batch.len();
        for entry in batch {
            if let Ok(OutputEvent::Chunk(chunk)) = parse_entry(&entry) {
                lost += chunk.seq.saturating_sub(next_seq);
                next_seq = next_seq.max(chunk.seq + 1);
                let len = chunk.text.len() as u64;
                total += len;
                let room = cap.saturating_sub(written);
                // Cut on a character boundary: the file stays valid UTF-8.
                let take = if len <= room {
                    chunk.text.len()
                } else {
                    chunk
                        .text
                        .floor_char_boundary(usize::try_from(room).unwrap_or(usize::MAX))
                };
                if take > 0 {
                    out.write_all(&chunk.text.as_bytes()[..take])
                        .await
                        .map_err(|e| format!("writing the output file: {e}"))?;
                    written += take as u64;
                }
            }
            start = format!("({}", entry.id);
        }
        if n < FILE_BATCH {
            break;
        }
    }
    lost += done.chunks.saturating_sub(next_seq);
    out.flush()
        .await
        .map_err(|e| format!("writing the output file: {e}"))?;
    Ok(OutputFile {
        source: DocumentSource::File(path.to_path_buf()),
        written,
        total,
        lost,
        _guard: Some(path),
    })
}

/// One `XRANGE` batch, retried over reconnects.
async fn read_range(
    ctx: &Arc<Ctx>,
    conn: &mut Option<OwnConn>,
    stream: &str,
    start: &str,
    end: &str,
) -> Result<Vec<StreamId>, String> {
    let mut backoff = Backoff::new(READ_PAUSE, READ_PAUSE)
        .attempts(READ_ATTEMPTS)
        .without_jitter();
    loop {
        if conn.is_none() {
            *conn = ctx.connect_own().await.ok();
        }
        let reply = match conn.as_mut() {
            Some(c) => redis::cmd("XRANGE")
                .arg(stream)
                .arg(start)
                .arg(end)
                .arg("COUNT")
                .arg(FILE_BATCH)
                .query_async::<StreamRangeReply>(c)
                .await
                .map_err(|e| e.to_string()),
            None => Err("no Redis connection".to_string()),
        };
        match reply {
            Ok(r) => return Ok(r.ids),
            Err(e) => {
                let attempt = backoff.failures() + 1;
                let Some(delay) = backoff.next_delay() else {
                    return Err(format!("reading the stream back: {e}"));
                };
                tracing::warn!(stream, attempt, error = %e, "reading the stream back; reconnecting");
                *conn = None;
                tokio::select! {
                    () = ctx.cancel.cancelled() => {
                        return Err(format!("reading the stream back: {e} (shutting down)"));
                    }
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
