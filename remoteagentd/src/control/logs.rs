//! `Request::Logs`: the last lines of a session's local log, and with
//! `follow` the lines appended after them, until the client hangs up.
//!
//! Log files are `{log_root}/{agentId}/{sessionId}.log` (written by the
//! execution side's `session_log`), so this works with the cloud unreachable.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use remoteagent_proto::control::{ErrorCode, LogsRequest, Reply, Response};
use remoteagent_proto::{AgentId, SessionId};

use super::{ControlError, ReplySink};
use crate::session_log::session_log_path;
use crate::supervisor::Supervisor;

/// How much of a log's end is read to find the last lines: enough for any
/// sensible `-n`, bounded so a huge log cannot exhaust memory.
const TAIL_WINDOW: u64 = 4 * 1024 * 1024;
/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// The largest `-n` honoured.
const MAX_LINES: usize = 100_000;

fn not_found(message: impl Into<String>) -> ControlError {
    ControlError::new(ErrorCode::NotFound, message)
}

/// Picks the log to show: the named session, or the newest one of the named
/// agent (or of all agents).
fn choose(
    supervisor: &Supervisor,
    agent: Option<&str>,
    session: Option<&str>,
) -> Result<(AgentId, SessionId, PathBuf), ControlError> {
    let settings = supervisor.settings();
    let root = &settings.log_root;
    let agents: Vec<AgentId> = match agent {
        Some(query) => vec![supervisor.resolve(query)?],
        None => supervisor.list().into_iter().map(|a| a.id).collect(),
    };
    if let Some(session) = session {
        let session = SessionId::parse(session).map_err(|e| {
            ControlError::new(ErrorCode::BadRequest, format!("bad session id: {e}"))
        })?;
        for agent in &agents {
            let path = session_log_path(root, agent, &session);
            if path.is_file() {
                return Ok((agent.clone(), session, path));
            }
        }
        return Err(not_found(format!("no log for session {session}")));
    }
    agents
        .iter()
        .filter_map(|a| {
            crate::session_log::list_sessions(root, a)
                .ok()?
                .pop()
                .map(|(s, t)| (a.clone(), s, t))
        })
        .max_by_key(|(_, _, t)| *t)
        .map(|(a, s, _)| {
            let path = session_log_path(root, &a, &s);
            (a, s, path)
        })
        .ok_or_else(|| not_found("no session logs yet"))
}

/// The last `n` lines of a file, and the offset where the file ended.
fn tail(path: &Path, n: usize) -> std::io::Result<(Vec<String>, u64)> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.by_ref().take(len - start).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    // A window that starts mid-file starts mid-line: drop that fragment.
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok((
        lines[skip..].iter().map(|l| l.to_string()).collect(),
        start + bytes.len() as u64,
    ))
}

pub async fn handle(
    supervisor: &Supervisor,
    id: u64,
    request: LogsRequest,
    sink: &ReplySink,
) -> Result<(), ControlError> {
    let LogsRequest {
        agent,
        session,
        lines,
        follow,
    } = request;
    let (agent_id, session_id, path) = choose(supervisor, agent.as_deref(), session.as_deref())?;
    let (last, mut offset) = tail(&path, lines.min(MAX_LINES))
        .map_err(|e| ControlError::internal(format!("reading {}: {e}", path.display())))?;
    let line_reply = |line: String| {
        Reply::more(
            id,
            Response::LogLine {
                agent_id: agent_id.clone(),
                session_id: session_id.clone(),
                line,
            },
        )
    };
    for line in last {
        if sink.send(line_reply(line)).await.is_err() {
            return Ok(());
        }
    }
    if !follow {
        return Ok(());
    }
    // Following: poll the file and send complete lines as they appear. The
    // connection drops this future when the client hangs up.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        tokio::time::sleep(FOLLOW_POLL).await;
        let Ok(mut file) = std::fs::File::open(&path) else {
            continue;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(offset);
        if len < offset {
            // Truncated or replaced: start over from its beginning.
            offset = 0;
            pending.clear();
        }
        if len == offset {
            continue;
        }
        if file.seek(SeekFrom::Start(offset)).is_err() {
            continue;
        }
        let mut bytes = Vec::new();
        if file
            .by_ref()
            .take(len - offset)
            .read_to_end(&mut bytes)
            .is_err()
        {
            continue;
        }
        offset += bytes.len() as u64;
        pending.extend_from_slice(&bytes);
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if sink.send(line_reply(text)).await.is_err() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_the_last_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.log");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        let (lines, end) = tail(&path, 2).unwrap();
        assert_eq!(lines, vec!["c", "d"]);
        assert_eq!(end, 8);
        let (all, _) = tail(&path, 100).unwrap();
        assert_eq!(all.len(), 4);
    }
}
