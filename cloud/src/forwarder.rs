//! The output forwarder. INTERFACE CONTRACT (signatures fixed; bodies by the
//! telegram/forwarder side).
//!
//! Per session: a placeholder message (with a Stop button whose
//! `callback_data` is `stop:{sessionId}`), then edits as chunks arrive from
//! `output:{agentId}:{sessionId}`, ending with a status line.

use remoteagent_proto::events::DoneStatus;
use remoteagent_proto::{AgentId, SessionId};
use tokio::sync::mpsc;

use crate::telegram::Telegram;

/// What the bot hands the forwarder when it starts a session.
#[derive(Debug, Clone)]
pub struct SessionStart {
    pub agent_id: AgentId,
    pub session_id: SessionId,
    pub chat_id: i64,
    pub agent_name: String,
}

/// Sent when a session's `done` has been delivered, so the bot can record it.
#[derive(Debug, Clone)]
pub struct SessionFinished {
    pub agent_id: AgentId,
    pub session_id: SessionId,
    pub chat_id: i64,
    pub status: DoneStatus,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("redis: {0}")]
    Redis(String),
    #[error(transparent)]
    Telegram(#[from] crate::telegram::TelegramError),
}

#[derive(Clone)]
pub struct Forwarder {}

impl Forwarder {
    /// `replica_id` names this process in the per-session Redis locks.
    pub fn new(
        redis: redis::Client,
        telegram: Telegram,
        finished: mpsc::UnboundedSender<SessionFinished>,
        replica_id: String,
    ) -> Self {
        let _ = (redis, telegram, finished, replica_id);
        todo!("forwarder side")
    }

    /// Sends the placeholder and starts forwarding the session's stream (read
    /// from its beginning). Call before the command is published. Returns the
    /// placeholder's message id.
    pub async fn start(&self, session: SessionStart) -> Result<i64, ForwarderError> {
        let _ = session;
        todo!("forwarder side")
    }

    /// Starts the background loop that resumes sessions left unfinished by
    /// this or a dead replica (from the last delivered stream id). Ends when
    /// `shutdown` is cancelled.
    pub fn spawn_resumer(&self, shutdown: tokio_util::sync::CancellationToken) {
        let _ = shutdown;
        todo!("forwarder side")
    }
}
