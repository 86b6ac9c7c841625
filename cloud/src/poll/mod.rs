//! Poll mode (`TELEGRAM_MODE=poll`): updates fetched with `getUpdates` long
//! polling, for a cloud without a public URL (one person's own bot on
//! their machine). The webhook's alternative, not an addition: Telegram
//! refuses `getUpdates` while a webhook is set.
//!
//! * One poller per bot across replicas: the one holding the Redis
//!   [`lease`]; the others wait to take over.
//! * Each update takes the webhook's path, [`crate::updates::take`]: claimed
//!   once in Redis, then queued in its user's lane.
//! * The offset of the next call is stored in the database after each
//!   batch ([`crate::db::poll_offsets`]), so a restart neither repeats an
//!   update (even with Redis emptied) nor loses one: an update is confirmed
//!   to Telegram (by the next call's offset) only once it has been taken.
//! * Failures are retried with [`Backoff`], every wait cancellable by
//!   shutdown, and each kind is told in one line; the 409 of a webhook left
//!   set names the fix, `remoteagent-cloud delete-webhook`.

pub mod lease;

use std::time::Duration;

use remoteagent_proto::backoff::Backoff;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bot::update::Update;
use crate::db::poll_offsets;
use crate::state::AppState;
use crate::telegram::TelegramError;
use crate::updates;
use lease::Lease;

/// The line said when Telegram refuses to poll because of a webhook.
pub const WEBHOOK_CONFLICT_HINT: &str = "Telegram refuses getUpdates while the bot has a webhook: \
run `remoteagent-cloud delete-webhook` to poll instead (or set PUBLIC_URL and \
TELEGRAM_MODE=webhook to keep the webhook)";

/// The line said when another program polls with the same token.
pub const OTHER_POLLER_HINT: &str = "another program polls Telegram with this bot's token \
(409 terminated by other getUpdates request): stop it, or give every replica the same \
REDIS_URL so that only one polls";

/// How the poller retries: from 1 s up to 30 s, forever.
fn retry_policy() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

/// Starts the poller; it ends (letting go of the lease) on shutdown.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(run(state))
}

async fn run(state: AppState) {
    let scope = updates::bot_scope(state.config.bot_token());
    let lease = Lease::new(
        state.redis.clone(),
        &scope,
        &state.config.replica_id,
        Duration::from_secs(state.config.poll_lease_secs),
    );
    let shutdown = state.shutdown.clone();
    loop {
        if !acquire(&lease, &shutdown).await {
            return;
        }
        tracing::info!(
            timeout_secs = state.config.poll_timeout_secs,
            "polling Telegram for updates (getUpdates); this replica holds the poll lease"
        );
        // Cancelled on shutdown, or by the keeper when the lease is lost.
        let held = shutdown.child_token();
        let keeper = tokio::spawn(keep(lease.clone(), held.clone()));
        poll(&state, &scope, &held).await;
        held.cancel();
        let _ = keeper.await;
        if shutdown.is_cancelled() {
            if let Err(e) = lease.release().await {
                tracing::warn!(error = %e, "could not release the poll lease; another replica takes over when it expires");
            }
            tracing::info!("stopped polling Telegram");
            return;
        }
    }
}

/// Waits until this replica holds the lease; false on shutdown.
async fn acquire(lease: &Lease, shutdown: &CancellationToken) -> bool {
    let mut backoff = retry_policy();
    let mut told_waiting = false;
    loop {
        let wait = match lease.try_acquire().await {
            Ok(true) => return true,
            Ok(false) => {
                if !told_waiting {
                    tracing::info!(
                        "another replica polls Telegram for this bot; this one takes over if it stops"
                    );
                    told_waiting = true;
                }
                backoff.reset();
                lease.ttl() / 3
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach Redis for the poll lease; retrying");
                backoff.next_delay().unwrap_or(Duration::from_secs(30))
            }
        };
        if !pause(wait, shutdown).await {
            return false;
        }
    }
}

/// Renews the lease every third of its TTL until `held` is cancelled.
/// Cancels `held` when the lease is lost, or when renewals have failed for
/// so long that it may have run out: then another replica may poll, and
/// this one must stop.
async fn keep(lease: Lease, held: CancellationToken) {
    let every = lease.ttl() / 3;
    let mut renewed_at = Instant::now();
    loop {
        if !pause(every, &held).await {
            return;
        }
        match lease.renew().await {
            Ok(true) => renewed_at = Instant::now(),
            Ok(false) => {
                tracing::warn!(
                    "the poll lease ran out and another replica may hold it; this one stops polling"
                );
                held.cancel();
                return;
            }
            Err(e) if renewed_at.elapsed() + every >= lease.ttl() => {
                tracing::warn!(error = %e, "cannot renew the poll lease before it runs out; this replica stops polling");
                held.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the poll lease failed; retrying");
            }
        }
    }
}

/// Sleeps `delay` unless `cancel` fires first; false if it did.
async fn pause(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// What a failed round was, to say each kind once rather than every retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    WebhookSet,
    OtherPoller,
    Unauthorized,
    RateLimited,
    Telegram,
    Database,
    Redis,
}

/// Polls while `held` lasts.
async fn poll(state: &AppState, scope: &str, held: &CancellationToken) {
    let timeout = Duration::from_secs(state.config.poll_timeout_secs);
    let mut backoff = retry_policy();
    let mut last_failure: Option<Failure> = None;
    // Where the next call starts; read from the database once per lease,
    // since another replica may have moved it while this one waited.
    let mut offset: Option<Option<i64>> = None;
    let mut stored: Option<i64> = None;
    'rounds: loop {
        let (failure, wait) = 'round: {
            let next = match offset {
                Some(o) => o,
                None => match poll_offsets::get(&state.db, scope).await {
                    Ok(o) => {
                        offset = Some(o);
                        stored = o;
                        o
                    }
                    Err(e) => {
                        say(&mut last_failure, Failure::Database, &backoff, || {
                            tracing::warn!(error = %e, "cannot read the poll offset from the database; retrying");
                        });
                        break 'round (Failure::Database, None);
                    }
                },
            };
            let answer = tokio::select! {
                _ = held.cancelled() => return,
                answer = state.telegram.get_updates(next, timeout) => answer,
            };
            let batch = match answer {
                Ok(batch) => batch,
                Err(e) => {
                    let (failure, wait) = classify(&e);
                    say(&mut last_failure, failure, &backoff, || tell(failure, &e));
                    break 'round (failure, wait);
                }
            };
            let mut next = next;
            let taken = take_all(state, batch, &mut next).await;
            offset = Some(next);
            if let Some(n) = next
                && stored != Some(n)
            {
                match poll_offsets::advance(&state.db, scope, n).await {
                    Ok(()) => stored = Some(n),
                    // The next call confirms the batch anyway; the offset is
                    // stored again after the next one.
                    Err(e) => {
                        tracing::warn!(error = %e, offset = n, "could not store the poll offset; a restart may fetch these updates again (their claims in Redis stop repeats)")
                    }
                }
            }
            if let Err(e) = taken {
                say(&mut last_failure, Failure::Redis, &backoff, || {
                    tracing::warn!(error = %e, "Redis did not answer while taking an update; it is fetched again");
                });
                break 'round (Failure::Redis, None);
            }
            if last_failure.take().is_some() {
                tracing::info!("polling Telegram works again");
            }
            backoff.reset();
            continue 'rounds;
        };
        let delay = backoff.next_delay().unwrap_or(Duration::from_secs(30));
        let delay = wait.map_or(delay, |w| w.max(delay));
        debug_assert_eq!(last_failure, Some(failure));
        if !pause(delay, held).await {
            return;
        }
    }
}

/// Runs `say` when `failure` is new (another kind than the last), and
/// every tenth retry of the same, so a lasting problem stays visible
/// without a line every few seconds.
fn say(last: &mut Option<Failure>, failure: Failure, backoff: &Backoff, say: impl FnOnce()) {
    if *last != Some(failure) || backoff.failures() % 10 == 9 {
        say();
    }
    *last = Some(failure);
}

/// The kind of a failed `getUpdates`, and the wait Telegram asked for.
fn classify(e: &TelegramError) -> (Failure, Option<Duration>) {
    match e {
        TelegramError::Api {
            code: 409,
            description,
        } if description.contains("webhook is active") => (Failure::WebhookSet, None),
        TelegramError::Api { code: 409, .. } => (Failure::OtherPoller, None),
        TelegramError::Api { code: 401, .. } => (Failure::Unauthorized, None),
        TelegramError::RetryAfter(secs) => (Failure::RateLimited, Some(Duration::from_secs(*secs))),
        _ => (Failure::Telegram, None),
    }
}

/// One clear line per kind of failure.
fn tell(failure: Failure, e: &TelegramError) {
    match failure {
        Failure::WebhookSet => tracing::error!("{WEBHOOK_CONFLICT_HINT}"),
        Failure::OtherPoller => tracing::error!("{OTHER_POLLER_HINT}"),
        Failure::Unauthorized => {
            tracing::error!("Telegram refused the bot token (401): check TELEGRAM_BOT_TOKEN")
        }
        Failure::RateLimited => {
            tracing::warn!(error = %e, "Telegram asked to slow down polling; waiting")
        }
        _ => tracing::warn!(error = %e, "getUpdates failed; retrying"),
    }
}

/// Takes each update of a batch in order, moving `offset` past it. An
/// update the bot cannot read is skipped with a warning (it would fail the
/// same way every time). Stops at the first Redis failure: that update and
/// the rest are fetched again.
async fn take_all(
    state: &AppState,
    batch: Vec<Value>,
    offset: &mut Option<i64>,
) -> Result<(), redis::RedisError> {
    for raw in batch {
        let Some(id) = raw.get("update_id").and_then(Value::as_i64) else {
            tracing::warn!("getUpdates returned an update without update_id; skipped");
            continue;
        };
        if offset.is_some_and(|o| id < o) {
            continue;
        }
        match serde_json::from_value::<Update>(raw) {
            Ok(update) => {
                updates::take(state, update).await?;
            }
            Err(e) => {
                tracing::warn!(update = id, error = %e, "skipped an update the bot cannot read")
            }
        }
        *offset = Some(id + 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_told_apart() {
        let webhook = TelegramError::Api {
            code: 409,
            description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first".into(),
        };
        assert_eq!(classify(&webhook).0, Failure::WebhookSet);
        let other = TelegramError::Api {
            code: 409,
            description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running".into(),
        };
        assert_eq!(classify(&other).0, Failure::OtherPoller);
        assert_eq!(
            classify(&TelegramError::RetryAfter(7)),
            (Failure::RateLimited, Some(Duration::from_secs(7)))
        );
        assert_eq!(
            classify(&TelegramError::Transport("reset".into())).0,
            Failure::Telegram
        );
        assert!(WEBHOOK_CONFLICT_HINT.contains("remoteagent-cloud delete-webhook"));
    }

    #[test]
    fn a_lasting_failure_is_said_once_then_every_tenth_retry() {
        let mut last = None;
        let mut backoff = retry_policy();
        let mut said = 0;
        for _ in 0..25 {
            say(&mut last, Failure::WebhookSet, &backoff, || said += 1);
            backoff.next_delay();
        }
        assert_eq!(said, 3, "the first, the 10th and the 20th");
        say(&mut last, Failure::Telegram, &backoff, || said += 1);
        assert_eq!(said, 4, "another kind is said at once");
    }
}
