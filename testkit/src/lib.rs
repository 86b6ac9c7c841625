//! Test support shared by the workspace's integration tests.
//!
//! * [`redis_server`]: a private `redis-server` on a free loopback port, which
//!   a test may stop and restart without disturbing other tests.
//! * [`redis_cluster`]: a private Redis Cluster (primaries with replicas) a
//!   test may fail over, kill nodes of, or grow.
//! * [`redis_url`]: the machine's shared Redis (from `REMOTEAGENT_TEST_REDIS_URL`).
//! * [`database_url`]: the local PostgreSQL (from `REMOTEAGENT_TEST_DATABASE_URL`).
//! * [`telegram`]: a fake Telegram Bot API server that records every call.
//! * [`home`]: a temporary HOME with the real daemon and CLI run in it.
//! * [`stt`]: a fake OpenAI-compatible speech-to-text server.

pub mod home;
pub mod pushes;
pub mod redis_cluster;
pub mod redis_server;
pub mod redis_tls;
pub mod stt;
pub mod telegram;

pub use redis_cluster::{ClusterNode, RedisCluster};
pub use redis_server::RedisServer;
pub use redis_tls::{TestCa, TlsRedisCluster, TlsRedisServer};

/// The shared Redis every test may use (unique key names only, never FLUSHALL).
pub fn redis_url() -> String {
    std::env::var("REMOTEAGENT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The local PostgreSQL database for tests.
pub fn database_url() -> String {
    std::env::var("REMOTEAGENT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral loopback port")
}

/// Polls `check` every 20 ms until it returns `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: std::time::Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A connection to the Redis at `url` for a test's own checks and writes,
/// with timeouts that hold on a busy machine (redis-rs's defaults, 1 s to
/// connect and 0.5 s per reply, fail tests while `stress-ng` runs beside
/// the suite).
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a valid Redis URL")
        .get_multiplexed_async_connection_with_config(&conn_config())
        .await
        .expect("connecting to the test Redis")
}

/// The timeouts of [`redis_conn`], for a test that opens its own client.
pub fn conn_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(15)))
        .set_response_timeout(Some(std::time::Duration::from_secs(15)))
}
