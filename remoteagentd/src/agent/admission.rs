//! Whether a command may run, and telling the owner when it may not.
//!
//! A session runs at most once. Three guards stand in the way of a replay:
//! the envelope record on disk (an id is written down and synced before it
//! is acted on, and an envelope that cannot be recorded is refused), the
//! session's local log, and its output stream in Redis. Then the prompt's
//! own faults and a busy agent refuse a command with `done {rejected}`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use remoteagent_proto::envelope::EnvelopeClaims;
use remoteagent_proto::events::{DonePayload, DoneStatus};
use remoteagent_proto::{AgentId, SessionId, names, now_secs};
use tokio_util::sync::CancellationToken;

use crate::output::OutputWriter;
use crate::redis_conn::SharedConn;
use crate::seen_envelopes::{AgentRecord, SeenError};
use crate::session_log::session_log_path;

/// Longest wait for the check that a new session has no stream yet.
const STREAM_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a refusal to reach the stream.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes the envelope's id down before it is acted on; `Err`: do not act
/// on it (seen before, or it cannot be recorded).
pub(super) async fn record_seen(
    seen: &Arc<Mutex<AgentRecord>>,
    claims: &EnvelopeClaims,
) -> Result<(), SeenError> {
    let seen = seen.clone();
    let claims = claims.clone();
    // File writes and an fsync: off the async workers.
    tokio::task::spawn_blocking(move || {
        let mut record = match seen.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        record.record(&claims, now_secs())
    })
    .await
    .unwrap_or_else(|e| Err(SeenError::Unrecordable(e.to_string())))
}

/// Whether `sid` ran before: it has a local log, or its output stream
/// exists. `Err` when Redis cannot tell.
pub(super) async fn ran_before(
    mut conn: SharedConn,
    log_root: &Path,
    agent: &AgentId,
    sid: &SessionId,
) -> Result<bool, String> {
    let log = session_log_path(log_root, agent, sid);
    if std::fs::symlink_metadata(&log).is_ok() {
        return Ok(true);
    }
    let mut exists = redis::cmd("EXISTS");
    exists.arg(names::output_stream(agent, sid));
    match tokio::time::timeout(STREAM_CHECK_TIMEOUT, exists.query_async::<i64>(&mut conn)).await {
        Ok(Ok(n)) => Ok(n > 0),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Why a prompt is refused, if it is: its own faults first (they stay
/// faults when the agent is idle), then a run in progress (`busy`). The
/// cloud queues prompts for a busy agent, so this is the backstop for a
/// race between replicas or an older cloud; it names the agent, never the
/// session's id.
pub(super) fn prompt_refusal(
    prompt: &str,
    max_prompt_bytes: usize,
    agent_name: &str,
    busy: bool,
) -> Option<String> {
    if prompt.len() > max_prompt_bytes {
        Some(format!(
            "the prompt is {} bytes; the limit is {}",
            prompt.len(),
            max_prompt_bytes
        ))
    } else if prompt.trim().is_empty() {
        Some("the prompt is empty".to_string())
    } else if busy {
        Some(format!(
            "{agent_name} is busy with another run; send this prompt again when it ends, or /stop it first"
        ))
    } else {
        None
    }
}

/// Tells the owner that session `sid` will not run: `done {rejected}`
/// with the reason, on its stream. The reason is written once: the cloud
/// shows it in the status line ("⚠️ rejected: …"), and a notice with the
/// same sentence printed it twice.
pub(super) async fn refuse(conn: SharedConn, agent: &AgentId, sid: &SessionId, message: String) {
    refuse_noting(conn, agent, sid, None, message).await
}

/// [`refuse`], with a `notice` before the `done` saying something the
/// reason does not (why a busy worktree agent could not use a worktree).
pub(super) async fn refuse_noting(
    conn: SharedConn,
    agent: &AgentId,
    sid: &SessionId,
    notice: Option<String>,
    message: String,
) {
    tracing::info!(session = %sid, reason = %message, "command refused");
    let key = names::output_stream(agent, sid);
    let mut out = OutputWriter::new(conn, key, CancellationToken::new());
    let written = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        if let Some(text) = notice {
            out.event(remoteagent_proto::events::OutputEvent::Notice(
                remoteagent_proto::events::NoticePayload { text },
            ))
            .await?;
        }
        out.finish(DonePayload {
            status: DoneStatus::Rejected,
            exit_code: None,
            duration_ms: 0,
            message: Some(message),
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        })
        .await
    })
    .await;
    if !matches!(written, Ok(Ok(_))) {
        tracing::warn!(session = %sid, "could not tell the owner that the command was refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_is_refused_for_its_own_faults_before_a_busy_agent() {
        assert_eq!(prompt_refusal("go", 10, "app", false), None);
        let too_long = prompt_refusal("0123456789x", 10, "app", true).unwrap();
        assert_eq!(too_long, "the prompt is 11 bytes; the limit is 10");
        let empty = prompt_refusal(" \n", 10, "app", true).unwrap();
        assert_eq!(empty, "the prompt is empty");
        // One sentence naming the agent, no session id.
        let taken = prompt_refusal("go", 10, "app", true).unwrap();
        assert_eq!(
            taken,
            "app is busy with another run; send this prompt again when it ends, or /stop it first"
        );
    }
}
