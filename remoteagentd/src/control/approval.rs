//! `Request::Approval`: Claude Code's approval hook asks whether a tool may
//! be used. The answer comes from the session (policy, phone or timeout);
//! this handler only checks the question's shape and waits. A client that
//! hangs up cancels the wait (the server drops this future), and the
//! session then resolves the request without anyone to tell.

use remoteagent_proto::control::{ApprovalRequest, ErrorCode, Response};
use tracing::Instrument;

use super::ControlError;
use crate::supervisor::Supervisor;

/// Longest tool name accepted.
const MAX_TOOL_CHARS: usize = 128;

pub async fn handle(
    supervisor: &Supervisor,
    request: ApprovalRequest,
) -> Result<Response, ControlError> {
    let ApprovalRequest {
        agent,
        session,
        tool,
        input,
        cwd,
    } = request;
    if tool.trim().is_empty()
        || tool.chars().count() > MAX_TOOL_CHARS
        || tool.chars().any(char::is_control)
    {
        return Err(ControlError::new(
            ErrorCode::BadRequest,
            "the tool name is empty, too long or holds control characters",
        ));
    }
    // The input is not logged: it may hold secrets the model typed.
    let span = tracing::info_span!("approval", agent = %agent, session = %session, tool = %tool);
    let decision = supervisor
        .ask_approval(&agent, session, tool, input, cwd)
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::info!(allow = decision.allow, reason = %decision.reason, "approval decision sent to the runner")
    });
    Ok(Response::ApprovalDecision {
        allow: decision.allow,
        reason: decision.reason,
        updated_input: decision.updated_input,
    })
}
