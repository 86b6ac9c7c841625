//! `getUpdates` as the Bot API serves it, for clouds in poll mode.
//!
//! * Updates a test pushes ([`super::FakeTelegram::push_update`]) wait in a
//!   queue, numbered in increasing order.
//! * `offset` confirms: every update with a lower `update_id` is forgotten
//!   for good; a negative `offset` keeps only that many of the newest.
//! * `limit` is clamped to 1..=100 (default 100) and `timeout` (seconds) to
//!   at least 0, as the Bot API server clamps them (it refuses neither).
//! * A long poll answers as soon as an update is there, or with `[]` when
//!   `timeout` runs out.
//! * 409 while a webhook is set; a new `getUpdates` ends the one still
//!   waiting with 409 "terminated by other getUpdates request".
//!
//! The answer and the call log change under the store's one lock, as for
//! every other method.

use std::time::Duration;

use serde_json::Value;

use super::answer::{finish, take_failure};
use super::rules::{Refusal, RuleId};
use super::{Inner, Shared, as_i64, lock};

const METHOD: &str = "getUpdates";

/// The parameters, read and clamped as the Bot API server does.
struct Params {
    offset: i64,
    limit: usize,
    timeout: Duration,
}

impl Params {
    fn read(body: &Value) -> Params {
        let int = |name: &str| body.get(name).and_then(as_i64);
        Params {
            offset: int("offset").unwrap_or(0),
            limit: int("limit").unwrap_or(100).clamp(1, 100) as usize,
            timeout: Duration::from_secs(int("timeout").unwrap_or(0).max(0) as u64),
        }
    }
}

/// Forgets the updates `offset` confirms.
fn confirm(state: &mut Inner, offset: i64) {
    if offset > 0 {
        while state
            .updates
            .front()
            .and_then(|u| u.get("update_id").and_then(as_i64))
            .is_some_and(|id| id < offset)
        {
            state.updates.pop_front();
        }
    } else if offset < 0 {
        let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
        while state.updates.len() > keep {
            state.updates.pop_front();
        }
    }
}

/// Counts a waiting poll for [`super::FakeTelegram::waiting_polls`], also
/// when the client gives up and the request is dropped.
struct Waiting<'a>(&'a Shared);

impl<'a> Waiting<'a> {
    fn start(inner: &'a Shared) -> Self {
        lock(inner).waiting_polls += 1;
        Waiting(inner)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = lock(self.0);
        state.waiting_polls = state.waiting_polls.saturating_sub(1);
    }
}

/// The answer of a poll that need not wait any more: overtaken by a newer
/// poll (409), or updates to give, or out of time.
fn answer_now(
    state: &mut Inner,
    params: &Params,
    generation: u64,
    deadline: tokio::time::Instant,
    body: &Value,
) -> Option<(u16, Value)> {
    if state.poll_generation != generation {
        let refusal = Refusal::of(RuleId::TerminatedByOtherPoll);
        return Some(finish(state, METHOD, body.clone(), Err(refusal)));
    }
    let ready: Vec<Value> = state.updates.iter().take(params.limit).cloned().collect();
    if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
        return Some(finish(state, METHOD, body.clone(), Ok(Value::Array(ready))));
    }
    None
}

/// Answers one `getUpdates`: `(HTTP status, JSON answer)`.
pub(super) async fn get_updates(inner: &Shared, body: Value) -> (u16, Value) {
    let params = Params::read(&body);
    let deadline = tokio::time::Instant::now() + params.timeout;
    let (generation, wake) = {
        let mut state = lock(inner);
        if let Some(refusal) = take_failure(&mut state, METHOD) {
            return finish(&mut state, METHOD, body, Err(refusal));
        }
        if state.webhook.is_some() {
            let refusal = Refusal::of(RuleId::WebhookActive);
            return finish(&mut state, METHOD, body, Err(refusal));
        }
        confirm(&mut state, params.offset);
        // A poll still waiting sees the new generation and ends with 409,
        // logged after this one's answer when this one need not wait.
        state.poll_generation += 1;
        state.wake.notify_waiters();
        let generation = state.poll_generation;
        if let Some(answer) = answer_now(&mut state, &params, generation, deadline, &body) {
            return answer;
        }
        (generation, state.wake.clone())
    };
    let _waiting = Waiting::start(inner);
    loop {
        // Registered before the store is looked at, so that an update
        // pushed in between still wakes this poll.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Some(answer) = answer_now(&mut lock(inner), &params, generation, deadline, &body) {
            return answer;
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
