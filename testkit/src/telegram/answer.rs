//! A call's end, shared by every method's handler (the server's and the
//! long poll's): a test's queued failure is taken first, and the outcome
//! becomes Telegram's answer and a line of the call log, in the critical
//! section that changed the store.

use serde_json::{Value, json};

use super::params::string_param;
use super::rules::Refusal;
use super::{Call, Inner};

/// Turns a call's outcome into its answer and logs the call, in the same
/// critical section as the store changed.
pub(super) fn finish(
    state: &mut Inner,
    method: &str,
    body: Value,
    outcome: Result<Value, Refusal>,
) -> (u16, Value) {
    let (status, response) = match outcome {
        Ok(result) => (200, json!({"ok": true, "result": result})),
        Err(refusal) => {
            // Shown with a failing test's output: which rule refused what.
            eprintln!(
                "fake Telegram refused {method} {}: {}",
                body_summary(&body),
                refusal
            );
            (refusal.code, refusal.to_json())
        }
    };
    state.calls.push(Call {
        method: method.to_string(),
        body,
        at: tokio::time::Instant::now(),
        status,
        response: response.clone(),
    });
    (status, response)
}

/// The call's chat, message and a short start of its text, for the log.
fn body_summary(body: &Value) -> String {
    let text = string_param(body, "text").or_else(|| string_param(body, "caption"));
    let text: String = text.unwrap_or_default().chars().take(60).collect();
    format!(
        "(chat {}, message {}, text {text:?})",
        body.get("chat_id").unwrap_or(&Value::Null),
        body.get("message_id").unwrap_or(&Value::Null)
    )
}

pub(super) fn take_failure(state: &mut Inner, method: &str) -> Option<Refusal> {
    let queue = state.failures.get_mut(method)?;
    let failure = queue.front_mut()?;
    let retry_after = failure.retry_after;
    failure.remaining = failure.remaining.saturating_sub(1);
    if failure.remaining == 0 {
        queue.pop_front();
    }
    Some(Refusal::too_many_requests(retry_after))
}
