//! The poll lease: Telegram answers only one `getUpdates` at a time per bot
//! (a second one ends the first with 409), so replicas sharing a bot token
//! must not all poll. The one holding `ra:poll:{bot}` in Redis polls; the
//! others wait and take over when it stops renewing (it died) or lets go
//! (it shut down).
//!
//! Plain `SET NX PX` to take it, and compare-and-set scripts to renew and
//! release it, so a replica can never extend or delete a lease another
//! replica took in the meantime.

use std::time::Duration;

use remoteagent_rediskit::Conn;

/// Extends the lease only while this owner holds it.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Deletes the lease only while this owner holds it.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";

/// The Redis key of the poll lease of the bot `scope` (its public id, see
/// [`crate::updates::bot_scope`]).
pub fn key(scope: &str) -> String {
    format!("ra:poll:{scope}")
}

/// One replica's hold (or attempt to hold) on the poll lease.
#[derive(Clone)]
pub struct Lease {
    redis: Conn,
    key: String,
    /// This process's unique value in the key.
    owner: String,
    ttl: Duration,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("owner", &self.owner)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// `owner` must be unique per process (two apps in one test process
    /// share a replica id, so a random part is added).
    pub fn new(redis: Conn, scope: &str, replica_id: &str, ttl: Duration) -> Lease {
        Lease {
            redis,
            key: key(scope),
            owner: format!("{replica_id}/{}", uuid::Uuid::new_v4().simple()),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Takes the lease if nobody holds it; true if this replica now does.
    pub async fn try_acquire(&self) -> Result<bool, redis::RedisError> {
        let mut conn = self.redis.clone();
        let reply: redis::Value = redis::cmd("SET")
            .arg(&self.key)
            .arg(&self.owner)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl_ms())
            .query_async(&mut conn)
            .await?;
        Ok(!matches!(reply, redis::Value::Nil))
    }

    /// Extends the lease by its whole TTL; false if this replica no longer
    /// holds it (it expired, and another replica may have taken it).
    pub async fn renew(&self) -> Result<bool, redis::RedisError> {
        let mut conn = self.redis.clone();
        let renewed: i64 = redis::Script::new(RENEW)
            .key(&self.key)
            .arg(&self.owner)
            .arg(self.ttl_ms())
            .invoke_async(&mut conn)
            .await?;
        Ok(renewed == 1)
    }

    /// Lets go of the lease (if still held), so another replica takes over
    /// at once instead of after the TTL.
    pub async fn release(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.redis.clone();
        let _: i64 = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.owner)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}
