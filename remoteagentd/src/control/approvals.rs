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
use remoteagent_proto::questions::{ASK_USER_QUESTION, EXIT_PLAN_MODE, MAX_ANSWER_CHARS};

use crate::approval::board::{Found, already_answered};
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
        answer,
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
    let answer = answer
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    if let Some(a) = &answer
        && (a.chars().count() > MAX_ANSWER_CHARS || a.chars().any(char::is_control))
    {
        return Err(ControlError::new(
            ErrorCode::BadRequest,
            format!("the answer must be one line of at most {MAX_ANSWER_CHARS} characters"),
        ));
    }
    let board = supervisor.settings().approval.board.clone();
    // Subscribed before the lookup, so the resolution cannot slip by.
    let mut changes = board.changes();
    let found = board.find(prefix)?;
    check_answer_fits(&found, allow, answer.is_some())?;
    let special = [ASK_USER_QUESTION, EXIT_PLAN_MODE].contains(&found.tool.as_str());
    let answer = ApprovalAnswer {
        request_id: found.request_id.clone(),
        allow,
        origin: Origin::Computer,
        reason,
        answer,
        scope: None,
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
    // A question's or a plan's outcome is worded by the session; it names
    // who answered.
    let won = if special {
        outcome.reason.contains("from your computer")
    } else {
        outcome.reason == ours
    };
    if outcome.allow != allow || !won {
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

/// A question needs an answer to be approved, a plan takes one only as the
/// feedback of a denial (a revision), and a tool use takes none.
fn check_answer_fits(found: &Found, allow: bool, has_answer: bool) -> Result<(), ControlError> {
    let id = &found.request_id;
    let refuse = |text: String| Err(ControlError::new(ErrorCode::BadRequest, text));
    match (found.tool.as_str(), allow, has_answer) {
        (ASK_USER_QUESTION, true, false) => refuse(format!(
            "request {id} is a question: answer it with remoteagentctl approve {id} --answer TEXT (see its options in remoteagentctl approvals), or decline with remoteagentctl deny {id}"
        )),
        (EXIT_PLAN_MODE, true, true) => refuse(format!(
            "request {id} is a plan: approve it as it is with remoteagentctl approve {id}, or ask for changes with remoteagentctl deny {id} --answer TEXT"
        )),
        (ASK_USER_QUESTION, false, true) => refuse(format!(
            "an answer approves a question: remoteagentctl approve {id} --answer TEXT"
        )),
        (ASK_USER_QUESTION | EXIT_PLAN_MODE, _, _) | (_, _, false) => Ok(()),
        (_, _, true) => refuse(format!(
            "request {id} asks to use a tool, not a question: --answer is for questions and plans"
        )),
    }
}
