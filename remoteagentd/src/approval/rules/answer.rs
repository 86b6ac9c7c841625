//! `/rules` from the phone: the signed `list_rules` command (with an
//! optional rule to revoke first) answered on the output stream of its
//! request id, in a task of its own beside any run, as `/sessions` is
//! (`conversations/answer.rs`): `started`, the `rules` event, `done`.

use remoteagent_proto::AgentId;
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_proto::rules::{ListRulesPayload, RuleInfo, RulesPayload};

use super::RuleStore;
use crate::output::answer::Answer;
use crate::redis_conn::SharedConn;

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
        let Some(answer) = Answer::start(self.conn.clone(), &self.agent, &sid, "/rules").await
        else {
            return;
        };
        let (store, agent) = (self.rules.clone(), self.agent.clone());
        let revoke = request.revoke;
        let listed = tokio::task::spawn_blocking(move || list_and_revoke(&store, &agent, revoke))
            .await
            .unwrap_or_else(|e| Err(format!("the rules could not be read: {e}")));
        match listed {
            Ok(rules) => {
                answer
                    .end(vec![OutputEvent::Rules(rules)], DoneStatus::Ok, None)
                    .await
            }
            Err(text) => answer.fail(DoneStatus::Error, text).await,
        }
    }
}
