//! Update claims: Telegram retries a webhook delivery it thinks failed, and
//! a restarted poller may fetch an update again, so each `update_id` is
//! claimed once and only the claimer acts ([`take`], the one path of both
//! the webhook and the poller).
//!
//! Claims live in Redis (`SET … NX EX`, one round trip, shared by every
//! replica), not in the database: a committed row per update cost a
//! database sync per webhook call, most of the webhook's capacity (the
//! `processed_updates` table of earlier versions is dropped by migration
//! 0003). When Redis is unreachable the claim fails
//! and the webhook answers 5xx, so Telegram delivers the update again later
//! instead of it being dropped or acted on twice.

use remoteagent_rediskit::Conn;

use crate::bot::update::Update;
use crate::metrics::Metrics;
use crate::state::AppState;

/// How long a claim is remembered; Telegram stops redelivering an update
/// long before.
pub const CLAIM_TTL_SECS: u64 = 24 * 3600;

/// The part of a bot token that names the bot: its public numeric id (the
/// text before `:`). A token of another shape is represented by a hash, so
/// the secret part never ends up in a Redis key.
pub fn bot_scope(bot_token: &str) -> String {
    match bot_token.split_once(':') {
        Some((id, _)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => id.to_string(),
        _ => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(bot_token.as_bytes());
            format!("h{}", &hex::encode(digest)[..16])
        }
    }
}

/// The Redis key of the claim of `update_id` for the bot `scope`.
pub fn claim_key(scope: &str, update_id: i64) -> String {
    format!("ra:upd:{scope}:{update_id}")
}

/// True if this call claimed the update (it was not seen before).
pub async fn claim(redis: &Conn, scope: &str, update_id: i64) -> Result<bool, redis::RedisError> {
    let mut conn = redis.clone();
    let reply: redis::Value = redis::cmd("SET")
        .arg(claim_key(scope, update_id))
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(CLAIM_TTL_SECS)
        .query_async(&mut conn)
        .await?;
    Ok(!matches!(reply, redis::Value::Nil))
}

/// What became of an update handed to [`take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// New: queued behind its user's earlier updates.
    Queued,
    /// Already taken before (a redelivery): skipped.
    Duplicate,
}

/// Claims `update` and, when it is new, queues it in its user's lane
/// ([`crate::lanes`], chosen by [`crate::bot::dispatch`]): what the webhook and the poller both do with an
/// update. An error means Redis did not answer and nothing was queued: the
/// caller has the update delivered again (webhook: 500; poller: the offset
/// stays before it).
pub async fn take(state: &AppState, update: Update) -> Result<Taken, redis::RedisError> {
    let scope = bot_scope(state.config.bot_token());
    if !claim(&state.redis, &scope, update.update_id).await? {
        Metrics::inc(&state.metrics.updates_duplicate);
        tracing::debug!(update = update.update_id, "duplicate update skipped");
        return Ok(Taken::Duplicate);
    }
    Metrics::inc(&state.metrics.updates_received);
    crate::bot::dispatch(state, update);
    Ok(Taken::Queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_scoped_by_the_bots_public_id_only() {
        assert_eq!(bot_scope("123456:AAE-secret_part"), "123456");
        let odd = bot_scope("not-a-bot-token");
        assert!(odd.starts_with('h') && odd.len() == 17, "{odd}");
        assert!(!odd.contains("not-a-bot"));
        assert_eq!(bot_scope(":secret").len(), 17);
        assert_eq!(claim_key("123456", 42), "ra:upd:123456:42");
    }
}
