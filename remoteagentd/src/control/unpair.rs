//! `Request::Unpair`: tell the cloud (best effort), then forget the agent
//! locally whatever the cloud said, so a user offline can still unpair.

use remoteagent_proto::AgentId;
use remoteagent_proto::control::{ErrorCode, Response};
use remoteagent_proto::events::StoppedBy;
use reqwest::StatusCode;
use secrecy::ExposeSecret;

use super::ControlError;
use crate::supervisor::Supervisor;

/// `DELETE {cloud}/api/agents/{id}` with the agent's JWT. True when the cloud
/// confirmed (or already had no such agent).
async fn revoke_in_cloud(supervisor: &Supervisor, id: &AgentId, cloud_url: &str) -> bool {
    let jwt = match supervisor.secrets.get(id).await {
        Ok(Some(jwt)) => jwt,
        Ok(None) => {
            tracing::warn!(agent = %id, "no token to authenticate the unpairing with the cloud");
            return false;
        }
        Err(e) => {
            tracing::warn!(agent = %id, error = %e, "could not read the token to unpair in the cloud");
            return false;
        }
    };
    let url = format!("{}/api/agents/{id}", cloud_url.trim_end_matches('/'));
    match supervisor
        .http
        .delete(&url)
        .bearer_auth(jwt.expose_secret())
        .send()
        .await
    {
        Ok(r) if r.status().is_success() || r.status() == StatusCode::NOT_FOUND => true,
        Ok(r) => {
            tracing::warn!(agent = %id, status = %r.status(), "the cloud refused to unpair the agent");
            false
        }
        Err(e) => {
            tracing::warn!(agent = %id, error = %e, "could not reach the cloud to unpair the agent");
            false
        }
    }
}

pub async fn handle(supervisor: &Supervisor, agent: &str) -> Result<Response, ControlError> {
    let id = supervisor.resolve(agent)?;
    let meta = supervisor
        .meta(&id)
        .ok_or_else(|| ControlError::new(ErrorCode::NotFound, format!("agent {id} is gone")))?;
    let cloud_revoked = revoke_in_cloud(supervisor, &id, &meta.cloud_url).await;
    supervisor.forget(&id, StoppedBy::Computer).await;
    Ok(Response::Unpaired {
        agent_id: id,
        name: meta.name,
        cloud_revoked,
    })
}
