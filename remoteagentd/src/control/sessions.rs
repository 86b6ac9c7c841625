//! `Request::Sessions`: an agent's recent sessions (conversations with the
//! AI), newest first, each with the command that continues it in a
//! terminal in the project — the hand-off from the phone to the computer.

use remoteagent_proto::control::Response;
use remoteagent_proto::sessions::{AgentSessions, LocalSession, resume_command};

use super::ControlError;
use crate::supervisor::Supervisor;

pub async fn handle(supervisor: &Supervisor, agent: &str) -> Result<Response, ControlError> {
    let agent_id = supervisor.resolve(agent)?;
    let meta = supervisor.meta(&agent_id).ok_or_else(|| {
        ControlError::new(
            remoteagent_proto::control::ErrorCode::NotFound,
            format!("no agent '{agent}'"),
        )
    })?;
    let history = supervisor.settings().conversations.clone();
    let id = agent_id.clone();
    let loaded = tokio::task::spawn_blocking(move || history.load(&id))
        .await
        .map_err(|e| ControlError::internal(e.to_string()))?
        .map_err(|e| ControlError::internal(format!("the list of sessions: {e}")))?;
    let sessions = loaded
        .into_iter()
        .map(|session| LocalSession {
            resume_command: resume_command(&meta.path, &session.runner, &session.id),
            session,
        })
        .collect();
    Ok(Response::Sessions(AgentSessions {
        agent_id,
        agent_name: meta.name,
        path: meta.path,
        sessions,
    }))
}
