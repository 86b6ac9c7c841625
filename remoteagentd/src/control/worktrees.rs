//! `Request::Worktrees`: an agent's git worktrees of parallel runs
//! (`crate::worktrees`), and with `clean` the finished ones removed, their
//! branches kept.

use remoteagent_proto::control::{ErrorCode, Response};
use remoteagent_proto::worktrees::WorktreesRequest;

use super::ControlError;
use crate::supervisor::Supervisor;

pub async fn handle(
    supervisor: &Supervisor,
    request: WorktreesRequest,
) -> Result<Response, ControlError> {
    let agent_id = supervisor.resolve(&request.agent)?;
    let meta = supervisor.meta(&agent_id).ok_or_else(|| {
        ControlError::new(ErrorCode::NotFound, format!("no agent '{}'", request.agent))
    })?;
    let settings = supervisor.settings().worktrees.clone();
    let surveyed = tokio::task::spawn_blocking(move || {
        crate::worktrees::answer::survey(
            &settings,
            &agent_id,
            &meta.name,
            &meta.path,
            request.clean,
        )
    })
    .await
    .map_err(|e| ControlError::internal(e.to_string()))?
    .map_err(|e| ControlError::internal(format!("the worktrees: {e}")))?;
    Ok(Response::Worktrees(surveyed))
}
