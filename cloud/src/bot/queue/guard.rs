//! `ra:queue:start:{agentId}`: held (`SET NX PX`) by whoever is starting a
//! run for the agent, typed or from the queue, until the run's session row
//! and forwarder record exist. So two replicas (a typed prompt on one, a
//! run's end on another) never start two runs at once: the one that finds
//! the key taken queues its prompt, or leaves the queue to the holder.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use remoteagent_proto::AgentId;
use remoteagent_proto::backoff::Backoff;
use remoteagent_rediskit::Conn;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Longest a start may hold the key (a replica that died holding it).
const TTL_MS: u64 = 15_000;

/// Deletes the key only if it still holds our token.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
    )
});

fn key(agent: &AgentId) -> String {
    format!("ra:queue:start:{agent}")
}

/// The right to start a run for one agent; released when dropped.
pub struct StartGuard {
    redis: Conn,
    key: String,
    token: String,
}

impl StartGuard {
    /// Takes the key, waiting a little while someone else holds it: a
    /// start (or a run's end looking at the queue) holds it for a few Redis
    /// and database round trips. `None`: still held after about 2 s, or
    /// the cloud is shutting down.
    ///
    /// Waiting matters: a typed prompt that found the key held by a run's
    /// end that was just finding the queue empty would otherwise be queued
    /// behind nothing, and wait for the housekeeping pass.
    pub async fn take_waiting(
        redis: &Conn,
        agent: &AgentId,
        shutdown: &CancellationToken,
    ) -> Result<Option<StartGuard>> {
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(200))
            .attempts(12)
            .without_jitter();
        loop {
            if let Some(guard) = StartGuard::take(redis, agent).await? {
                return Ok(Some(guard));
            }
            let Some(delay) = backoff.next_delay() else {
                return Ok(None);
            };
            tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Takes the key; `None` when someone else holds it.
    pub async fn take(redis: &Conn, agent: &AgentId) -> Result<Option<StartGuard>> {
        let key = key(agent);
        let token = format!("{:016x}", rand::random::<u64>());
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(TTL_MS)
            .query_async(&mut redis.clone())
            .await
            .map_err(Error::internal)?;
        Ok(set.map(|_| StartGuard {
            redis: redis.clone(),
            key,
            token,
        }))
    }
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        let mut redis = self.redis.clone();
        let key = std::mem::take(&mut self.key);
        let token = std::mem::take(&mut self.token);
        // Drop cannot wait; the release is quick and the TTL covers a
        // release that never happens.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let released: redis::RedisResult<i64> =
                    RELEASE.key(&key).arg(&token).invoke_async(&mut redis).await;
                if let Err(e) = released {
                    tracing::warn!(key, error = %e, "releasing a queue start key");
                }
            });
        }
    }
}
