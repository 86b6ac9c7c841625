//! [`Conn`]: one connection type for a standalone server and a cluster.
//!
//! Everything that sends commands takes a `Conn` (or any
//! `ConnectionLike`), so the cloud and the daemon run the same code on
//! both. Which variant to build:
//!
//! * [`managed`] — a connection shared by many tasks that must survive
//!   Redis restarts: redis-rs's `ConnectionManager` on a standalone server
//!   (reconnects, resubscribes), its cluster connection on a cluster
//!   (which reconnects per node and follows `MOVED` and failovers).
//! * [`dedicated`] — a connection one task owns alone, for a blocking read
//!   (`XREAD BLOCK`): a multiplexed connection, or a cluster connection of
//!   its own (its own sockets to every node), since Redis answers one
//!   socket's commands in order and a pending block would hold up every
//!   other caller of a shared socket.

use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, PushInfo, RedisFuture, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::target::Target;

/// A standalone connection (plain or managed) or a cluster connection.
/// Cloning is cheap and every clone shares the same sockets.
#[derive(Clone)]
pub enum Conn {
    Plain(MultiplexedConnection),
    Managed(ConnectionManager),
    Cluster(ClusterConn),
}

/// redis-rs's cluster connection, with what [`crate::nodes`] needs to
/// reach one node directly: the login and protocol the cluster connection
/// uses, and the per-node connections opened so far.
#[derive(Clone)]
pub struct ClusterConn {
    pub(crate) conn: ClusterConnection,
    pub(crate) nodes: std::sync::Arc<Nodes>,
}

/// How to reach one node directly, shared by every clone.
pub(crate) struct Nodes {
    /// The first seed's details (login, TLS), RESP2: a node's address
    /// replaces the seed's for a direct connection.
    pub(crate) seed: redis::ConnectionInfo,
    /// The direct connections opened so far, by `host:port`.
    pub(crate) direct: tokio::sync::Mutex<std::collections::HashMap<String, MultiplexedConnection>>,
}

impl ClusterConn {
    /// The redis-rs connection (routes by key, follows `MOVED`).
    pub fn inner(&mut self) -> &mut ClusterConnection {
        &mut self.conn
    }
}

/// How to connect. The defaults are redis-rs's.
#[derive(Clone, Default)]
pub struct Options {
    /// Where pub/sub messages go (RESP3 pushes). Setting it switches the
    /// connection to RESP3.
    pub push: Option<UnboundedSender<PushInfo>>,
    /// RESP3 even without a push sender.
    pub resp3: bool,
    pub connection_timeout: Option<Duration>,
    /// `None` waits for ever (a blocking read's connection).
    pub response_timeout: Option<Duration>,
    /// Reconnection attempts of a managed connection before it gives up.
    pub retries: Option<usize>,
    /// The longest wait between those attempts.
    pub max_delay: Option<Duration>,
}

impl Options {
    fn target(&self, target: &Target) -> Target {
        if self.push.is_some() || self.resp3 {
            target.resp3()
        } else {
            target.clone()
        }
    }
}

/// A connection shared by many tasks, reconnecting by itself.
pub async fn managed(target: &Target, options: &Options) -> redis::RedisResult<Conn> {
    match options.target(target) {
        Target::Standalone(info) => {
            let client = redis::Client::open(info)?;
            let mut config = ConnectionManagerConfig::new();
            if let Some(tx) = &options.push {
                config = config
                    .set_push_sender(tx.clone())
                    .set_automatic_resubscription();
            }
            if let Some(t) = options.connection_timeout {
                config = config.set_connection_timeout(Some(t));
            }
            config = config.set_response_timeout(options.response_timeout);
            if let Some(n) = options.retries {
                config = config.set_number_of_retries(n);
            }
            if let Some(d) = options.max_delay {
                config = config.set_max_delay(d);
            }
            Ok(Conn::Managed(
                ConnectionManager::new_with_config(client, config).await?,
            ))
        }
        Target::Cluster(nodes) => cluster(nodes, options).await,
    }
}

/// A connection for one task alone (see the module's comment).
pub async fn dedicated(target: &Target, options: &Options) -> redis::RedisResult<Conn> {
    match options.target(target) {
        Target::Standalone(info) => {
            let client = redis::Client::open(info)?;
            let mut config = AsyncConnectionConfig::new();
            if let Some(tx) = &options.push {
                config = config.set_push_sender(tx.clone());
            }
            if let Some(t) = options.connection_timeout {
                config = config.set_connection_timeout(Some(t));
            }
            config = config.set_response_timeout(options.response_timeout);
            Ok(Conn::Plain(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            ))
        }
        Target::Cluster(nodes) => cluster(nodes, options).await,
    }
}

async fn cluster(nodes: Vec<redis::ConnectionInfo>, options: &Options) -> redis::RedisResult<Conn> {
    // Direct connections to one node (`nodes`) speak RESP2 and get no
    // pushes: they only send admin commands.
    let seed = nodes
        .first()
        .map(|n| {
            let settings = n
                .redis_settings()
                .clone()
                .set_protocol(redis::ProtocolVersion::RESP2);
            n.clone().set_redis_settings(settings)
        })
        .ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a cluster needs at least one seed node",
            ))
        })?;
    let mut builder = ClusterClientBuilder::new(nodes);
    if let Some(tx) = &options.push {
        builder = builder.push_sender(tx.clone());
    }
    if let Some(t) = options.connection_timeout {
        builder = builder.connection_timeout(t);
    }
    if let Some(t) = options.response_timeout {
        builder = builder.response_timeout(t);
    } else {
        // A blocking read's connection: long enough for any `BLOCK` we use.
        builder = builder.response_timeout(Duration::from_secs(3600));
    }
    if let Some(n) = options.retries {
        builder = builder.retries(u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some(d) = options.max_delay {
        builder = builder.max_retry_wait(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }
    let client = builder.build()?;
    Ok(Conn::Cluster(ClusterConn {
        conn: client.get_async_connection().await?,
        nodes: std::sync::Arc::new(Nodes {
            seed,
            direct: Default::default(),
        }),
    }))
}

impl Conn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    /// Subscribes to `channel`: `SUBSCRIBE` on a standalone server,
    /// `SSUBSCRIBE` (sharded) on a cluster. Messages come through the push
    /// sender given at connection; both kinds read with
    /// `redis::Msg::from_push_info`.
    pub async fn subscribe(&mut self, channel: &str) -> redis::RedisResult<()> {
        match self {
            Conn::Plain(c) => c.subscribe(channel).await,
            Conn::Managed(c) => c.subscribe(channel).await,
            Conn::Cluster(c) => c.conn.ssubscribe(channel).await,
        }
    }

    pub async fn unsubscribe(&mut self, channel: &str) -> redis::RedisResult<()> {
        match self {
            Conn::Plain(c) => c.unsubscribe(channel).await,
            Conn::Managed(c) => c.unsubscribe(channel).await,
            Conn::Cluster(c) => c.conn.sunsubscribe(channel).await,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Managed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Plain(c) => c.get_db(),
            Conn::Managed(c) => c.get_db(),
            Conn::Cluster(c) => c.conn.get_db(),
        }
    }
}

/// `err` as a sentence for the user, with what to do when the TLS
/// server's certificate was not trusted (a private CA not in the roots).
pub fn explain(err: &redis::RedisError) -> String {
    let text = err.to_string();
    if text.contains("invalid peer certificate") {
        format!(
            "{text} (the Redis server's TLS certificate is not trusted; if it comes from a \
             private CA, set SSL_CERT_FILE for the daemon to a PEM file with that CA and \
             the system's roots)"
        )
    } else {
        text
    }
}
