//! What happens to the session logs, as it happens: a session's log was
//! created, written to, or closed. `remoteagentctl logs -f` waits on these
//! instead of polling the files (`control/logs/follow.rs`).
//!
//! One broadcast channel for the whole daemon: events are small (two ids),
//! and a follower that falls behind (`Lagged`) simply reads every file it
//! follows up to its end, so nothing is lost but the pacing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use remoteagent_proto::{AgentId, SessionId};
use tokio::sync::broadcast;

/// Events kept for a slow follower before it lags (then it re-reads).
const CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEventKind {
    /// The log was created; its start record is written.
    Started,
    /// Bytes were appended.
    Wrote,
    /// The writer is gone (after the end record, or when the session ended
    /// without one): nothing more is appended by this daemon.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub agent: AgentId,
    pub session: SessionId,
    pub kind: LogEventKind,
}

/// The daemon's log events, and which logs are open for writing now.
#[derive(Debug, Clone)]
pub struct LogEvents {
    tx: broadcast::Sender<LogEvent>,
    open: Arc<Mutex<HashSet<SessionId>>>,
}

impl Default for LogEvents {
    fn default() -> Self {
        LogEvents {
            tx: broadcast::channel(CAPACITY).0,
            open: Arc::default(),
        }
    }
}

impl LogEvents {
    /// Events from now on. Subscribe before reading a log, so that what is
    /// written in between is announced rather than missed.
    pub fn subscribe(&self) -> broadcast::Receiver<LogEvent> {
        self.tx.subscribe()
    }

    /// True while this daemon still writes the session's log: a follower
    /// subscribed before asking will see its [`LogEventKind::Closed`].
    pub fn is_open(&self, session: &SessionId) -> bool {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(session)
    }

    /// Marks the log open; its [`LogEventKind::Started`] follows once its
    /// start record is written.
    pub(super) fn opened(&self, session: &SessionId) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session.clone());
    }

    pub(super) fn closed(&self, agent: &AgentId, session: &SessionId) {
        // Out of the open set first: whoever then finds it closed has
        // subscribed too late for the event, and reads the whole file.
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session);
        self.send(agent, session, LogEventKind::Closed);
    }

    pub(super) fn send(&self, agent: &AgentId, session: &SessionId, kind: LogEventKind) {
        // No receiver (nobody follows) is the common case, not an error.
        let _ = self.tx.send(LogEvent {
            agent: agent.clone(),
            session: session.clone(),
            kind,
        });
    }
}
