//! Fixed-window limits kept in Redis, so that every replica counts into the
//! same window: `SET key 0 EX window NX` starts a window, `INCR` counts in
//! it (INCR keeps the expiry). Both run in one MULTI, so a key can never
//! lose its expiry and lock a client out for good.

use std::time::Duration;

use remoteagent_rediskit::Conn;

/// At most `max` events per `window` per key.
#[derive(Debug, Clone)]
pub struct RedisLimit {
    /// Names the limit in the keys (`ra:limit:{name}:{key}`).
    pub name: &'static str,
    pub max: u64,
    pub window: Duration,
}

impl RedisLimit {
    /// `/api/pair`: ten codes a minute per client.
    pub const PAIR: RedisLimit = RedisLimit {
        name: "pair",
        max: 10,
        window: Duration::from_secs(60),
    };

    pub fn redis_key(&self, key: &str) -> String {
        format!("ra:limit:{}:{key}", self.name)
    }

    /// Counts an event for `key`; false if the window's limit was already
    /// reached.
    pub async fn allow(&self, redis: &Conn, key: &str) -> redis::RedisResult<bool> {
        let redis_key = self.redis_key(key);
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&redis_key)
            .arg(0)
            .arg("EX")
            .arg(self.window.as_secs().max(1))
            .arg("NX")
            .ignore()
            .cmd("INCR")
            .arg(&redis_key)
            .query_async(&mut redis.clone())
            .await?;
        Ok(count <= self.max)
    }
}
