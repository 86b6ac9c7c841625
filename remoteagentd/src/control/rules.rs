//! `Request::Rules`: `remoteagentctl rules NAME [--revoke N]`, the agent's
//! approval rules from the same store and the same code as the bot's
//! `/rules` (`approval::rules::answer::list_and_revoke`).

use remoteagent_proto::control::{AgentRules, ErrorCode, Response, RulesRequest};

use super::ControlError;
use crate::approval::rules::answer::list_and_revoke;
use crate::supervisor::Supervisor;

pub async fn handle(
    supervisor: &Supervisor,
    request: RulesRequest,
) -> Result<Response, ControlError> {
    let agent_id = supervisor.resolve(&request.agent)?;
    let meta = supervisor.meta(&agent_id).ok_or_else(|| {
        ControlError::new(ErrorCode::NotFound, format!("no agent '{}'", request.agent))
    })?;
    let store = supervisor.settings().approval.rules.clone();
    let id = agent_id.clone();
    let revoke = request.revoke;
    let rules = tokio::task::spawn_blocking(move || {
        list_and_revoke(&store, &id, revoke).map(|rules| (rules, store.auto_allowed(&id)))
    })
    .await
    .map_err(|e| ControlError::internal(e.to_string()))?
    .map_err(ControlError::internal)?;
    let (rules, auto_allowed) = rules;
    Ok(Response::Rules(AgentRules {
        agent_name: meta.name,
        rules,
        auto_allowed,
    }))
}
