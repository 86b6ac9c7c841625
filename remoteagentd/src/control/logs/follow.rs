//! `logs -f`: the lines written after the first answer, as the session
//! logs announce them ([`LogEvents`](crate::session_log::LogEvents)), never
//! by polling the files.
//!
//! Following agents, a session that starts is shown from its first line
//! under its own header; one already running when the follow began is
//! shown from its next line. Following one session ends when its log is
//! closed (after its end record). A follower that falls behind the events
//! (`Lagged`) reads every log it follows, and each running session of its
//! agents, up to its end.

use std::collections::HashMap;

use remoteagent_proto::SessionId;
use remoteagent_proto::control::Response;
use tokio::sync::broadcast::{self, error::RecvError};

use super::select::{LogRef, Scope};
use super::{Gone, Out};
use crate::session_log::{self, Cursor, LogEvent, LogEventKind};

pub enum Target {
    /// Every session of the scope's agents, until the client hangs up.
    Agents,
    /// One session, until its log is closed.
    Session(SessionId),
}

struct Followed {
    log: LogRef,
    cursor: Cursor,
}

/// Streams new lines until the client hangs up or, for one session, its
/// end. `shown` are the logs already shown, each with where it was shown to.
pub async fn run(
    scope: &Scope<'_>,
    out: &Out<'_>,
    target: Target,
    shown: Vec<(LogRef, u64)>,
    mut events: broadcast::Receiver<LogEvent>,
) -> Result<(), Gone> {
    let mut followed: HashMap<SessionId, Followed> = shown
        .into_iter()
        .map(|(log, end)| {
            let cursor = Cursor::new(log.path.clone(), end);
            (log.session.clone(), Followed { log, cursor })
        })
        .collect();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "a logs follower fell behind; reading its logs");
                if let Target::Agents = target {
                    for agent in scope.agents() {
                        if let Some(s) = agent.running_session
                            && !followed.contains_key(&s)
                        {
                            start(scope, out, &mut followed, scope.log(&agent.id, &s), true)
                                .await?;
                        }
                    }
                }
                for f in followed.values_mut() {
                    drain(out, f).await?;
                }
                if let Target::Session(s) = &target
                    && !scope_is_open(scope, s)
                {
                    return Ok(());
                }
                continue;
            }
            // The daemon is going away.
            Err(RecvError::Closed) => return Ok(()),
        };
        let wanted = match &target {
            Target::Session(s) => &event.session == s,
            Target::Agents => scope.covers(&event.agent),
        };
        if !wanted {
            continue;
        }
        if !followed.contains_key(&event.session) {
            // A session that starts is shown whole; one that was running
            // (another agent's, when following all) from its next line.
            let from_start = event.kind == LogEventKind::Started;
            let log = scope.log(&event.agent, &event.session);
            start(scope, out, &mut followed, log, from_start).await?;
        }
        if let Some(f) = followed.get_mut(&event.session) {
            drain(out, f).await?;
        }
        if event.kind == LogEventKind::Closed {
            followed.remove(&event.session);
            if let Target::Session(_) = target {
                return Ok(());
            }
        }
    }
}

fn scope_is_open(scope: &Scope<'_>, session: &SessionId) -> bool {
    scope.log_events().is_open(session)
}

/// Starts following `log`: its header, then (from its start or from its
/// next whole line) its lines as they come.
async fn start(
    scope: &Scope<'_>,
    out: &Out<'_>,
    followed: &mut HashMap<SessionId, Followed>,
    log: LogRef,
    from_start: bool,
) -> Result<(), Gone> {
    let offset = if from_start {
        0
    } else {
        session_log::tail(&log.path, 0, None, None, true).map_or(0, |(_, end)| end)
    };
    out.send(Response::LogSession(scope.info(&log))).await?;
    let cursor = Cursor::new(log.path.clone(), offset);
    followed.insert(log.session.clone(), Followed { log, cursor });
    Ok(())
}

async fn drain(out: &Out<'_>, f: &mut Followed) -> Result<(), Gone> {
    match f.cursor.read_new() {
        Ok(lines) => out.lines(&f.log, lines).await,
        // Gone (pruned, unpaired): nothing more to show of it.
        Err(e) => {
            tracing::debug!(session = %f.log.session, error = %e, "a followed log cannot be read");
            Ok(())
        }
    }
}
