//! `/sessions` from the phone: the signed `list_sessions` command answered
//! on the output stream of its request id, in a task of its own beside any
//! run (it only reads): `started` at once (so the cloud knows this daemon
//! took it; an older one skips it without a word), then the `sessions`
//! event with the list, newest first, and `done {ok}` — or a notice in
//! words and `done {error}` when the list cannot be read.

use remoteagent_proto::AgentId;
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_proto::sessions::{ListSessionsPayload, SessionsPayload};

use super::History;
use crate::output::answer::Answer;
use crate::redis_conn::SharedConn;

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
        let Some(answer) = Answer::start(self.conn.clone(), &self.agent, &sid, "/sessions").await
        else {
            return;
        };
        let (history, agent) = (self.history.clone(), self.agent.clone());
        let loaded = tokio::task::spawn_blocking(move || history.load(&agent))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match loaded {
            Ok(sessions) => {
                tracing::info!(session = %sid, count = sessions.len(), "/sessions answered");
                let list = OutputEvent::Sessions(SessionsPayload { sessions });
                answer.end(vec![list], DoneStatus::Ok, None).await;
            }
            Err(e) => {
                // The error names files of this computer: the log has it,
                // the phone gets words.
                tracing::warn!(session = %sid, error = %e, "/sessions: the list of sessions cannot be read");
                answer
                    .fail(
                        DoneStatus::Error,
                        "the list of sessions could not be read on this computer; \
                         `remoteagentctl sessions` there says why"
                            .to_string(),
                    )
                    .await;
            }
        }
    }
}
