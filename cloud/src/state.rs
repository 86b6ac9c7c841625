//! What every handler shares: configuration, database, Redis, the signing
//! key, the Telegram client and outbox, the forwarder and the counters.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use remoteagent_proto::keys::CloudSigningKey;
use remoteagent_rediskit::Conn;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::Db;
use crate::forwarder::Forwarder;
use crate::metrics::Metrics;
use crate::redis_acl::Acl;
use crate::telegram::{Outbox, Telegram};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: Db,
    /// The shared command connection (reconnects by itself): a
    /// connection manager on a standalone server, a cluster connection on a
    /// Redis Cluster.
    pub redis: Conn,
    pub acl: Acl,
    pub key: CloudSigningKey,
    pub telegram: Telegram,
    /// The bot's one outbox, shared with the forwarder.
    pub outbox: Outbox,
    pub forwarder: Forwarder,
    /// Transcribes voice notes; `None` without `STT_URL`.
    pub stt: Option<crate::stt::Stt>,
    pub metrics: Metrics,
    /// The bot's @username, when `getMe` answered at start-up.
    pub bot_username: Option<String>,
    /// The bot's forum topic mode is on (`getMe`'s `has_topics_enabled`):
    /// private chats have one topic per agent (see [`crate::topics`]).
    pub topics_in_private: bool,
    /// Telegram users recently found to have no row (never paired).
    pub unknown_users: UnknownUsers,
    /// Per-user queues that keep each user's updates in order.
    pub lanes: crate::lanes::Lanes,
    /// Cancelled on shutdown; background tasks stop with it.
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("bot_username", &self.bot_username)
            .finish_non_exhaustive()
    }
}

/// Telegram users the database recently had no row for, so that text from
/// strangers (the bulk of a public bot's traffic, and any flood) is answered
/// without a database query each time.
///
/// Entries live [`UnknownUsers::TTL`]: a user who pairs (which creates the
/// row) is known again at the latest that long after their previous stray
/// message, on every replica, well before a person can have run
/// `remoteagentctl pair`, sent the code and typed a prompt.
#[derive(Debug, Default)]
pub struct UnknownUsers {
    seen: Mutex<HashMap<i64, Instant>>,
}

impl UnknownUsers {
    pub const TTL: Duration = Duration::from_secs(5);
    /// Bound on the entries kept; expired ones are swept when it is reached.
    const MAX: usize = 100_000;

    /// Records that `user` has no row.
    pub fn insert(&self, user: i64) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= Self::MAX {
            seen.retain(|_, at| now.duration_since(*at) < Self::TTL);
            if seen.len() >= Self::MAX {
                seen.clear();
            }
        }
        seen.insert(user, now);
    }

    /// Whether `user` was recorded as unknown less than [`Self::TTL`] ago.
    pub fn contains(&self, user: i64) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&user).is_some_and(|at| at.elapsed() < Self::TTL)
    }

    /// Forgets `user` (its row was just created).
    pub fn forget(&self, user: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(&user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_are_remembered_briefly() {
        let unknown = UnknownUsers::default();
        assert!(!unknown.contains(7));
        unknown.insert(7);
        assert!(unknown.contains(7));
        assert!(!unknown.contains(8));
        unknown.forget(7);
        assert!(!unknown.contains(7));
    }
}
