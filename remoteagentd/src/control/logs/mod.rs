//! `Request::Logs`: session logs, like `journalctl` shows a unit's.
//!
//! * the last `lines` lines of the newest session (of one agent or all), of
//!   one session (`session`: an id or unique id prefix), or of every session
//!   with lines since `since_ms`; each session's lines come after a
//!   [`Response::LogSession`] header, each line with the time it was written;
//! * with `follow`, then the lines written after them ([`follow`]): of every
//!   session the agent (or any agent) runs from now on, or, for one session,
//!   until that session's log is closed;
//! * with `list`, the sessions instead ([`Response::LogSessions`]).
//!
//! Log files are `{log_root}/{agentId}/{sessionId}.log` (written by the
//! execution side's `session_log`), so this works with the cloud unreachable.

mod follow;
mod select;

use remoteagent_proto::control::{ErrorCode, LogsRequest, Reply, Response};

use super::{ControlError, ReplySink};
use crate::session_log::{self, TimedLine};
use crate::supervisor::Supervisor;
use select::{LogRef, Scope};

/// The largest `-n` honoured.
const MAX_LINES: usize = 100_000;

/// Where a `logs` answer goes: replies for one request id.
struct Out<'a> {
    id: u64,
    sink: &'a ReplySink,
}

/// The client hung up: stop quietly.
struct Gone;

impl Out<'_> {
    async fn send(&self, data: Response) -> Result<(), Gone> {
        self.sink
            .send(Reply::more(self.id, data))
            .await
            .map_err(|_| Gone)
    }

    async fn lines(&self, log: &LogRef, lines: Vec<TimedLine>) -> Result<(), Gone> {
        for line in lines {
            self.send(Response::LogLine {
                agent_id: log.agent.clone(),
                session_id: log.session.clone(),
                line: line.text,
                time_ms: line.time_ms,
            })
            .await?;
        }
        Ok(())
    }
}

pub async fn handle(
    supervisor: &Supervisor,
    id: u64,
    request: LogsRequest,
    sink: &ReplySink,
) -> Result<Option<Response>, ControlError> {
    let LogsRequest {
        agent,
        session,
        lines,
        follow,
        since_ms,
        list,
    } = request;
    let lines = lines.min(MAX_LINES);
    let scope = Scope::new(supervisor, agent.as_deref())?;
    if list {
        let mut sessions: Vec<_> = scope
            .sessions(since_ms)
            .into_iter()
            .map(|(_, info)| info)
            .collect();
        sessions.drain(..sessions.len().saturating_sub(lines));
        return Ok(Some(Response::LogSessions { sessions }));
    }
    // Subscribed before anything is read: whatever is written from here on
    // is announced, so nothing falls between the tail and the follow.
    let events = follow.then(|| supervisor.settings().log_events.subscribe());
    let one = session.map(|q| scope.resolve_session(&q)).transpose()?;
    // For one session: whether its end is still to come (asked after
    // subscribing, so its close is then announced).
    let open = one
        .as_ref()
        .is_some_and(|l| supervisor.settings().log_events.is_open(&l.session));
    let shown: Vec<LogRef> = match (&one, since_ms) {
        (Some(log), _) => vec![log.clone()],
        (None, Some(since)) => scope
            .sessions(Some(since))
            .into_iter()
            .map(|(l, _)| l)
            .collect(),
        (None, None) => match scope.newest() {
            Some(log) => vec![log],
            // Following waits for the first session; otherwise say so.
            None if follow => Vec::new(),
            None => {
                return Err(ControlError::new(ErrorCode::NotFound, "no run logs yet"));
            }
        },
    };

    // The newest sessions' last lines, up to `lines` in all.
    let mut sections = Vec::new();
    let mut left = lines;
    for log in shown.iter().rev() {
        let info = scope.info(log);
        let (tail, end) = session_log::tail(&log.path, left, since_ms, info.started_at_ms, follow)
            .map_err(|e| ControlError::internal(format!("reading {}: {e}", log.path.display())))?;
        left -= tail.len();
        // With `since`, a session without lines in the window is left out
        // (unless it is the one asked for).
        if one.is_some() || since_ms.is_none() || !tail.is_empty() {
            sections.push((log.clone(), info, tail, end));
        }
        if left == 0 {
            break;
        }
    }
    let out = Out { id, sink };
    let mut cursors = Vec::new();
    for (log, info, tail, end) in sections.into_iter().rev() {
        if out.send(Response::LogSession(info)).await.is_err()
            || out.lines(&log, tail).await.is_err()
        {
            return Ok(None);
        }
        cursors.push((log, end));
    }
    let Some(events) = events else {
        return Ok(None);
    };
    if one.is_some() && !open {
        // The session's log is complete: its end is already shown.
        return Ok(None);
    }
    let target = match one {
        Some(log) => follow::Target::Session(log.session),
        None => follow::Target::Agents,
    };
    let _ = follow::run(&scope, &out, target, cursors, events).await;
    Ok(None)
}
