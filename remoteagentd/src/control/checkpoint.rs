//! `Request::Checkpoint`: `remoteagentctl diff|undo|commit NAME` on a
//! run's checkpoint, through the same `crate::checkpoint::answer::act` as
//! the phone's buttons.

use remoteagent_proto::SessionId;
use remoteagent_proto::checkpoints::{CheckpointAction, CheckpointResult};
use remoteagent_proto::control::{CheckpointRequest, ErrorCode, Response};

use super::ControlError;
use crate::checkpoint::answer::{ActContext, act_unless_busy};
use crate::supervisor::Supervisor;

pub async fn handle(
    supervisor: &Supervisor,
    request: CheckpointRequest,
) -> Result<Response, ControlError> {
    let agent_id = supervisor.resolve(&request.agent)?;
    let meta = supervisor.meta(&agent_id).ok_or_else(|| {
        ControlError::new(ErrorCode::NotFound, format!("no agent '{}'", request.agent))
    })?;
    let ctx = ActContext {
        agent: agent_id.clone(),
        agent_name: meta.name.clone(),
        project: meta.path.clone(),
        log_root: supervisor.settings().log_root.clone(),
    };
    let run = match request.session {
        Some(run) => run,
        None => last_run(&ctx).await?,
    };
    let is_diff = matches!(request.action, CheckpointAction::Diff { .. });
    let is_undo = matches!(request.action, CheckpointAction::Undo { .. });
    let answer = SessionId::generate();
    let busy = supervisor
        .agent_info(&agent_id)
        .is_some_and(|a| a.running_session.is_some());
    let acted = act_unless_busy(&ctx, busy, &run, &answer, request.action).await;
    let diff = match (&acted.result, acted.full_diff) {
        (_, Some(full)) => Some(full),
        (CheckpointResult::Diff { diff, .. }, None) if is_diff => Some(diff.clone()),
        _ => None,
    };
    let recorded_as =
        (is_undo && matches!(acted.result, CheckpointResult::Undone { .. })).then_some(answer);
    Ok(Response::Checkpoint {
        agent_name: meta.name,
        run,
        result: acted.result,
        diff,
        recorded_as,
    })
}

async fn last_run(ctx: &ActContext) -> Result<SessionId, ControlError> {
    let repo = crate::checkpoint::Repo::find(&ctx.project)
        .await
        .map_err(|e| ControlError::internal(e.to_string()))?
        .ok_or_else(|| {
            ControlError::new(
                ErrorCode::NotFound,
                format!(
                    "{} is not in a git repository: no checkpoints",
                    ctx.project.display()
                ),
            )
        })?;
    crate::checkpoint::last_run(&repo, &ctx.agent)
        .await
        .map_err(|e| ControlError::internal(e.to_string()))?
        .ok_or_else(|| {
            ControlError::new(
                ErrorCode::NotFound,
                format!("{} has no run with a checkpoint yet", ctx.agent_name),
            )
        })
}
