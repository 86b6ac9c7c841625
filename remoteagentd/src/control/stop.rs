//! `Request::Stop`: abort an agent's running session.

use remoteagent_proto::control::Response;

use super::ControlError;
use crate::session_log::session_log_path;
use crate::supervisor::Supervisor;

pub async fn handle(supervisor: &Supervisor, agent: &str) -> Result<Response, ControlError> {
    let agent_id = supervisor.resolve(agent)?;
    let session_id = supervisor.stop(&agent_id).await?;
    tracing::info!(agent = %agent_id, session = %session_id, "session stopped on request");
    let agent_name = supervisor
        .meta(&agent_id)
        .map(|m| m.name)
        .unwrap_or_default();
    // The session's log is created when it starts: its birth time is the
    // session's (absent on file systems that do not record one).
    let log = session_log_path(&supervisor.settings().log_root, &agent_id, &session_id);
    let started_at_ms = std::fs::metadata(log)
        .and_then(|m| m.created())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
    Ok(Response::Stopped {
        agent_id,
        session_id,
        agent_name,
        started_at_ms,
    })
}
