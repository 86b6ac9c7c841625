//! `/sessions` from the phone: the signed `list_sessions` command answered
//! on the output stream of its request id, in a task of its own beside any
//! run (it only reads): `started` at once (so the cloud knows this daemon
//! took it; an older one skips it without a word), then the `sessions`
//! event with the list, newest first, and `done {ok}` — or a notice in
//! words and `done {error}` when the list cannot be read.

use std::time::Duration;

use remoteagent_proto::events::{
    DonePayload, DoneStatus, NoticePayload, OutputEvent, StartedPayload,
};
use remoteagent_proto::sessions::{ListSessionsPayload, SessionsPayload};
use remoteagent_proto::{AgentId, names, now_ms};
use tokio_util::sync::CancellationToken;

use super::History;
use crate::output::{OutputError, OutputWriter};
use crate::redis_conn::SharedConn;

/// Longest wait for the stream to take the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What answering one `list_sessions` needs.
pub struct ListJob {
    /// The agent's link connection: the answer is a few short writes.
    pub conn: SharedConn,
    pub agent: AgentId,
    pub history: History,
}

impl ListJob {
    pub async fn run(self, request: ListSessionsPayload) {
        let sid = request.session_id;
        let key = names::output_stream(&self.agent, &sid);
        let mut out = OutputWriter::new(self.conn.clone(), key.clone(), CancellationToken::new());
        let (history, agent) = (self.history.clone(), self.agent.clone());
        let loaded = tokio::task::spawn_blocking(move || history.load(&agent))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            out.event(OutputEvent::Started(StartedPayload {
                session_id: sid.clone(),
                agent_id: self.agent.clone(),
                runner: "/sessions".into(),
                started_at_ms: now_ms(),
                mode: None,
            }))
            .await?;
            match loaded {
                Ok(sessions) => {
                    tracing::info!(session = %sid, count = sessions.len(), "/sessions answered");
                    out.event(OutputEvent::Sessions(SessionsPayload { sessions }))
                        .await?;
                    out.finish(done(DoneStatus::Ok, None)).await
                }
                Err(e) => {
                    // The error names files of this computer: the log has
                    // it, the phone gets words.
                    tracing::warn!(session = %sid, error = %e, "/sessions: the list of sessions cannot be read");
                    let text = "the list of sessions could not be read on this computer; \
                                `remoteagentctl sessions` there says why"
                        .to_string();
                    out.event(OutputEvent::Notice(NoticePayload { text: text.clone() }))
                        .await?;
                    out.finish(done(DoneStatus::Error, Some(text))).await
                }
            }
        })
        .await;
        let written: Result<(), OutputError> = written.unwrap_or_else(|_| {
            Err(OutputError {
                key,
                reason: "timed out".into(),
            })
        });
        if let Err(e) = written {
            tracing::warn!(session = %sid, error = %e, "could not answer a /sessions");
        }
    }
}

fn done(status: DoneStatus, message: Option<String>) -> DonePayload {
    DonePayload {
        status,
        exit_code: None,
        duration_ms: 0,
        message,
        chunks: 0,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    }
}
