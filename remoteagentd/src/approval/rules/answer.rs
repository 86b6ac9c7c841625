//! `/rules` from the phone: the signed `list_rules` command (with an
//! optional rule to revoke first) answered on the output stream of its
//! request id, in a task of its own beside any run, as `/sessions` is
//! (`conversations/answer.rs`): `started`, the `rules` event, `done`.

use std::time::Duration;

use remoteagent_proto::events::{
    DonePayload, DoneStatus, NoticePayload, OutputEvent, StartedPayload,
};
use remoteagent_proto::rules::{ListRulesPayload, RuleInfo, RulesPayload};
use remoteagent_proto::{AgentId, names, now_ms};
use tokio_util::sync::CancellationToken;

use super::RuleStore;
use crate::output::{OutputError, OutputWriter};
use crate::redis_conn::SharedConn;

/// Longest wait for the stream to take the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What answering one `list_rules` needs.
pub struct RulesJob {
    pub conn: SharedConn,
    pub agent: AgentId,
    pub rules: RuleStore,
}

/// Revokes `revoke` (if any) and lists: the answer, or words for the
/// user when the revoke failed. Shared with `remoteagentctl rules`.
pub fn list_and_revoke(
    store: &RuleStore,
    agent: &AgentId,
    revoke: Option<u32>,
) -> Result<RulesPayload, String> {
    let revoked = match revoke {
        None => None,
        Some(id) => match store.revoke(agent, id) {
            Ok(Some(RuleInfo { pattern, .. })) => {
                tracing::info!(agent = %agent, rule = id, "approval rule revoked");
                Some(format!("Revoked rule {id}: {pattern}"))
            }
            Ok(None) => Some(format!("There is no rule {id} (already revoked?)")),
            Err(e) => {
                tracing::warn!(agent = %agent, rule = id, error = %e, "revoking an approval rule");
                return Err(format!("rule {id} could not be revoked: {e}"));
            }
        },
    };
    Ok(RulesPayload {
        rules: store.list(agent),
        revoked,
    })
}

impl RulesJob {
    pub async fn run(self, request: ListRulesPayload) {
        let sid = request.session_id;
        let key = names::output_stream(&self.agent, &sid);
        let mut out = OutputWriter::new(self.conn.clone(), key.clone(), CancellationToken::new());
        let (store, agent) = (self.rules.clone(), self.agent.clone());
        let revoke = request.revoke;
        let answer = tokio::task::spawn_blocking(move || list_and_revoke(&store, &agent, revoke))
            .await
            .unwrap_or_else(|e| Err(format!("the rules could not be read: {e}")));
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            out.event(OutputEvent::Started(StartedPayload {
                session_id: sid.clone(),
                agent_id: self.agent.clone(),
                runner: "/rules".into(),
                started_at_ms: now_ms(),
                mode: None,
            }))
            .await?;
            match answer {
                Ok(rules) => {
                    out.event(OutputEvent::Rules(rules)).await?;
                    out.finish(done(DoneStatus::Ok, None)).await
                }
                Err(text) => {
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
            tracing::warn!(session = %sid, error = %e, "could not answer a /rules");
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
