//! `Request::Approvals` and `Request::ApprovalAnswer`: the approval
//! requests waiting on the daemon's board, and answers to them from the
//! computer (`remoteagentctl approvals|approve|deny`).
//!
//! An answer is handed to the session that asked, through the same channel
//! as the phone's, so the session alone decides and the first answer wins;
//! this handler then waits for the board to show the request resolved and
//! says whose answer that was.

use std::time::Duration;

use remoteagent_proto::control::{ApprovalAnswerRequest, ErrorCode, Response};

use super::ControlError;
use crate::approval::board::already_answered;
use crate::approval::{ApprovalAnswer, Origin};
use crate::supervisor::Supervisor;

/// Longest reason accepted, in characters (the phone shows up to 300).
const MAX_REASON_CHARS: usize = 300;
/// How long the session may take to act on the answer: it handles answers
/// between reads of its runner's output, so this is generous.
const RESOLVE_WAIT: Duration = Duration::from_secs(15);

pub fn list(supervisor: &Supervisor) -> Response {
    Response::Approvals {
        requests: supervisor.settings().approval.board.list(),
    }
}

pub async fn answer(
    supervisor: &Supervisor,
    request: ApprovalAnswerRequest,
) -> Result<Response, ControlError> {
    let ApprovalAnswerRequest {
        request: prefix,
        allow,
        reason,
    } = request;
    let prefix = prefix.trim();
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ControlError::new(
            ErrorCode::BadRequest,
            "a request id is made of letters and digits (see remoteagentctl approvals)",
        ));
    }
    let reason = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if let Some(r) = &reason
        && (r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control))
    {
        return Err(ControlError::new(
            ErrorCode::BadRequest,
            format!("the reason must be one line of at most {MAX_REASON_CHARS} characters"),
        ));
    }
    let board = supervisor.settings().approval.board.clone();
    // Subscribed before the lookup, so the resolution cannot slip by.
    let mut changes = board.changes();
    let found = board.find(prefix)?;
    let answer = ApprovalAnswer {
        request_id: found.request_id.clone(),
        allow,
        origin: Origin::Computer,
        reason,
    };
    let (_, ours) = answer.texts();
    tracing::info!(request = %found.request_id, allow, "approval answer from the computer");
    if found.answers.try_send(answer).is_err() {
        return Err(ControlError::internal(
            "the session is not taking answers right now (it may be ending); try again",
        ));
    }
    let wait = async {
        loop {
            if let Some(outcome) = board.outcome(&found.request_id) {
                return Some(outcome);
            }
            if changes.changed().await.is_err() {
                return None;
            }
        }
    };
    let outcome = match tokio::time::timeout(RESOLVE_WAIT, wait).await {
        Ok(Some(outcome)) => outcome,
        Ok(None) | Err(_) => {
            return Err(ControlError::internal(format!(
                "the session did not act on the answer in {} s; see remoteagentctl logs",
                RESOLVE_WAIT.as_secs()
            )));
        }
    };
    if outcome.allow != allow || outcome.reason != ours {
        // Another answer got there first.
        return Err(already_answered(&outcome));
    }
    Ok(Response::ApprovalAnswered {
        request_id: outcome.request_id,
        agent_name: outcome.agent_name,
        label: outcome.label,
        allow,
        reason: outcome.reason,
    })
}
