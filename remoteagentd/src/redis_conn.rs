//! An agent's Redis connection as a handle whose connection can be replaced.
//!
//! redis-rs's `ConnectionManager` reconnects by itself after an I/O error,
//! but when its reconnection ends in any other error (Redis refusing the
//! login because the agent's ACL user is gone after a restart, or `LOADING`
//! while it reads its AOF), it keeps answering every later call with that
//! error and never tries again. The agent task then builds a new manager;
//! this handle lets everything that writes for the agent (running sessions'
//! output writers included) pick up the new one on their next call instead
//! of retrying forever on the dead one.
//!
//! The connection is a [`rediskit::Conn`]: a manager on a standalone
//! server, redis-rs's cluster connection on a Redis Cluster (the URL stored
//! at pairing is then a comma-separated list of nodes, or one URL marked
//! `cluster=true`). Everything that writes for the agent goes through it
//! and does not care which.

use std::sync::{Arc, RwLock};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use remoteagent_rediskit::{Conn, Target};

/// A cheap, clonable handle; every clone sees [`SharedConn::replace`].
#[derive(Clone)]
pub struct SharedConn {
    current: Arc<RwLock<Conn>>,
}

impl SharedConn {
    pub fn new(conn: Conn) -> Self {
        SharedConn {
            current: Arc::new(RwLock::new(conn)),
        }
    }

    /// The connection in use now (a clone, itself a handle).
    pub fn get(&self) -> Conn {
        // A poisoned lock still holds a valid connection: a panic cannot
        // leave a half-written `Conn` behind an assignment.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `conn` in place of the current connection for every clone.
    pub fn replace(&self, conn: Conn) {
        let old = {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *current, conn)
        };
        // Dropped outside the lock: the last handle of the old connection
        // closes it.
        drop(old);
    }
}

impl From<Conn> for SharedConn {
    fn from(conn: Conn) -> Self {
        SharedConn::new(conn)
    }
}

impl From<ConnectionManager> for SharedConn {
    fn from(conn: ConnectionManager) -> Self {
        SharedConn::new(Conn::Managed(conn))
    }
}

impl ConnectionLike for SharedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let mut conn = self.get();
        Box::pin(async move { conn.req_packed_command(cmd).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let mut conn = self.get();
        Box::pin(async move { conn.req_packed_commands(pipeline, offset, count).await })
    }

    fn get_db(&self) -> i64 {
        self.get().get_db()
    }
}

/// Where and how to log in as an agent: `url` is the Redis the cloud named
/// at pairing, without credentials (one `redis://` URL for a standalone
/// server; a comma-separated list of nodes, or one URL with
/// `?cluster=true`, for a Redis Cluster); `username` its ACL user (empty:
/// the default user, no password) and its JWT the password; RESP3, which
/// the link needs for pushes. The link's connection, the blob connections
/// and `doctor`'s login check all come from here.
pub fn agent_target(url: &str, username: &str, password: &str) -> redis::RedisResult<Target> {
    let target = Target::parse(url, false).map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "the Redis address stored at pairing cannot be used (pair the folder again)",
            e.to_string(),
        ))
    })?;
    Ok(target.with_login(username, password).resp3())
}

/// Whether `e` says Redis refused the agent's credentials (its ACL user is
/// missing or has another password), as opposed to a lost connection.
///
/// A cluster connection that cannot log in to any seed node says so in an
/// I/O error "Failed to create initial connections" whose detail is the
/// last node's refusal (`"WRONGPASS": invalid username-password pair…`):
/// the refusal is looked for there too.
pub fn is_auth_error(e: &redis::RedisError) -> bool {
    const REFUSALS: [&str; 3] = ["WRONGPASS", "NOAUTH", "authentication failed"];
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
        || e.detail()
            .is_some_and(|d| REFUSALS.iter().any(|r| d.contains(r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{IntoConnectionInfo, ProtocolVersion};
    use remoteagent_testkit::RedisServer;

    fn client(server: &RedisServer, user: &str, password: &str) -> redis::Client {
        let info = server.url().as_str().into_connection_info().unwrap();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3)
            .set_username(user)
            .set_password(password);
        redis::Client::open(info.set_redis_settings(settings)).unwrap()
    }

    #[tokio::test]
    async fn a_refused_login_is_told_apart_from_a_lost_connection() {
        let mut server = RedisServer::start().unwrap();
        // A user that does not exist, as after a restart without an ACL file.
        let err = client(&server, "ra-agent-gone", "secret")
            .get_multiplexed_async_connection()
            .await
            .unwrap_err();
        assert!(is_auth_error(&err), "{err:?}");
        server.stop();
        let err = client(&server, "ra-agent-gone", "secret")
            .get_multiplexed_async_connection()
            .await
            .unwrap_err();
        assert!(!is_auth_error(&err), "{err:?}");
    }

    #[tokio::test]
    async fn every_clone_follows_a_replaced_connection() {
        let a = RedisServer::start().unwrap();
        let b = RedisServer::start().unwrap();
        let manager = |s: &RedisServer| {
            let client = redis::Client::open(s.url()).unwrap();
            ConnectionManager::new(client)
        };
        let shared = SharedConn::from(manager(&a).await.unwrap());
        let mut clone = shared.clone();
        let () = redis::cmd("SET")
            .arg("k")
            .arg("a")
            .query_async(&mut clone)
            .await
            .unwrap();
        shared.replace(Conn::Managed(manager(&b).await.unwrap()));
        let () = redis::cmd("SET")
            .arg("k")
            .arg("b")
            .query_async(&mut clone)
            .await
            .unwrap();
        let mut check_a = redis::Client::open(a.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let on_a: String = redis::cmd("GET")
            .arg("k")
            .query_async(&mut check_a)
            .await
            .unwrap();
        assert_eq!(on_a, "a");
        let mut check_b = redis::Client::open(b.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let on_b: String = redis::cmd("GET")
            .arg("k")
            .query_async(&mut check_b)
            .await
            .unwrap();
        assert_eq!(on_b, "b");
    }
}
