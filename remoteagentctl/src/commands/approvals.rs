//! `remoteagentctl approvals`, `approve ID` and `deny ID`: the tool-approval
//! requests waiting for an answer, answered from the computer instead of
//! the phone. The first answer wins, from either side.

use remoteagent_proto::control::{ApprovalAnswerRequest, PendingApproval, Request, Response};
use remoteagent_proto::elapsed::elapsed;

use super::{print_json, print_line, short_id, shown};
use crate::client::Client;
use crate::error::CliError;

/// Longest summary shown on a line of `approvals`, in characters.
const SUMMARY_CHARS: usize = 100;

pub async fn list(client: &mut Client, json: bool) -> Result<(), CliError> {
    let requests = match client.call(Request::Approvals).await? {
        Response::Approvals { requests } => requests,
        other => return Err(CliError::error(format!("unexpected answer: {other:?}"))),
    };
    if json {
        return print_json(&requests);
    }
    if requests.is_empty() {
        return print_line("No approval requests are waiting.");
    }
    for r in &requests {
        for line in lines(r) {
            print_line(&line)?;
        }
    }
    print_line(
        "Answer with `remoteagentctl approve ID` or `remoteagentctl deny ID --reason TEXT`; a question (AskUserQuestion) with `remoteagentctl approve ID --answer TEXT`.",
    )
}

/// Two lines per request: who asks what, then the times.
fn lines(r: &PendingApproval) -> [String; 2] {
    // The summary is the model's text: cleaned, one line, cut short.
    let summary = shown(&r.summary);
    let summary = match summary.char_indices().nth(SUMMARY_CHARS) {
        Some((at, _)) => format!("{}…", &summary[..at]),
        None => summary,
    };
    [
        format!(
            "{}  {} (run {})  {}: {}",
            shown(&r.request_id),
            shown(&r.agent_name),
            short_id(r.session_id.as_str()),
            shown(&r.tool),
            summary
        ),
        format!(
            "    waiting {}, denied in {} unless answered",
            elapsed(r.waiting_secs),
            elapsed(r.left_secs)
        ),
    ]
}

pub async fn answer(
    client: &mut Client,
    request: String,
    allow: bool,
    reason: Option<String>,
    answer: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let response = client
        .call(Request::ApprovalAnswer(ApprovalAnswerRequest {
            request,
            allow,
            reason,
            answer,
        }))
        .await?;
    if json {
        return print_json(&response);
    }
    match response {
        Response::ApprovalAnswered {
            request_id,
            agent_name,
            label,
            allow,
            reason,
        } => print_line(&format!(
            "{} request {} of {}: {}.",
            verb(allow, &reason),
            shown(&request_id),
            shown(&agent_name),
            shown(&label)
        )),
        other => Err(CliError::error(format!("unexpected answer: {other:?}"))),
    }
}

/// "Approved", "Denied", or for questions and plans what the answer did.
fn verb(allow: bool, reason: &str) -> &'static str {
    if reason.starts_with("answered ") {
        "Answered"
    } else if reason.starts_with("revision ") {
        "Asked to revise"
    } else if allow {
        "Approved"
    } else {
        "Denied"
    }
}
