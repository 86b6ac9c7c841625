//! A short answer to a command from the phone (`/get`, `/sessions`,
//! `/rules`, `/clean`, a checkpoint action), written on the output stream of the
//! command's request id beside any run: `started` naming what answers, the
//! answer's events, then `done`. The cloud reads it like a run
//! (`cloud/src/answer_stream.rs`), so each part is a bounded write: a
//! stream that does not take it within [`WRITE_TIMEOUT`] is logged and
//! the phone's wait for the answer ends in words there.

use std::time::{Duration, Instant};

use remoteagent_proto::events::{
    DonePayload, DoneStatus, NoticePayload, OutputEvent, StartedPayload,
};
use remoteagent_proto::{AgentId, SessionId, names, now_ms};
use tokio_util::sync::CancellationToken;

use super::{OutputError, OutputWriter};
use crate::redis_conn::SharedConn;

/// Longest wait for the stream to take each part of an answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer begun with `started`.
pub struct Answer {
    out: OutputWriter,
    key: String,
    session: SessionId,
    runner: &'static str,
    begun: Instant,
}

impl Answer {
    /// Writes `started` (`runner` names the command) on the stream of
    /// `session`. None, logged, when the stream does not take it.
    pub async fn start(
        conn: SharedConn,
        agent: &AgentId,
        session: &SessionId,
        runner: &'static str,
    ) -> Option<Answer> {
        let key = names::output_stream(agent, session);
        let mut out = OutputWriter::new(conn, key.clone(), CancellationToken::new());
        let started = OutputEvent::Started(StartedPayload {
            session_id: session.clone(),
            agent_id: agent.clone(),
            runner: runner.into(),
            started_at_ms: now_ms(),
            mode: None,
        });
        let written = tokio::time::timeout(WRITE_TIMEOUT, out.event(started)).await;
        if let Err(e) = written.unwrap_or_else(|_| Err(timed_out(&key))) {
            tracing::warn!(session = %session, runner, error = %e, "could not answer: the stream cannot be written");
            return None;
        }
        Some(Answer {
            out,
            key,
            session: session.clone(),
            runner,
            begun: Instant::now(),
        })
    }

    /// Writes `events`, then `done` with `status` and `message`.
    pub async fn end(
        mut self,
        events: Vec<OutputEvent>,
        status: DoneStatus,
        message: Option<String>,
    ) {
        let done = DonePayload {
            status,
            exit_code: None,
            duration_ms: self.begun.elapsed().as_millis() as u64,
            message,
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        };
        let out = &mut self.out;
        let written = tokio::time::timeout(WRITE_TIMEOUT, async move {
            for event in events {
                out.event(event).await?;
            }
            out.finish(done).await
        })
        .await;
        if let Err(e) = written.unwrap_or_else(|_| Err(timed_out(&self.key))) {
            tracing::warn!(session = %self.session, runner = self.runner, error = %e, "could not finish an answer");
        }
    }

    /// Ends an answer that could not be given (`status`: rejected or
    /// error): `text` as a notice and as the message of `done`.
    pub async fn fail(self, status: DoneStatus, text: String) {
        let notice = OutputEvent::Notice(NoticePayload { text: text.clone() });
        self.end(vec![notice], status, Some(text)).await;
    }
}

fn timed_out(key: &str) -> OutputError {
    OutputError {
        key: key.to_string(),
        reason: "timed out".into(),
    }
}
