//! `Request::Stop`: abort an agent's running session.

use remoteagent_proto::control::Response;

use super::ControlError;
use crate::supervisor::Supervisor;

pub async fn handle(supervisor: &Supervisor, agent: &str) -> Result<Response, ControlError> {
    let agent_id = supervisor.resolve(agent)?;
    let session_id = supervisor.stop(&agent_id).await?;
    tracing::info!(agent = %agent_id, session = %session_id, "session stopped on request");
    Ok(Response::Stopped {
        agent_id,
        session_id,
    })
}
