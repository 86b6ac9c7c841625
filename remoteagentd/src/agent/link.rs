//! The agent's link to Redis: one RESP3 connection used both to SUBSCRIBE
//! to its command channel and to write (output streams, presence).
//!
//! On a Redis Cluster (the URL stored at pairing lists its nodes) the
//! connection is redis-rs's cluster connection and the subscription is
//! sharded (`SSUBSCRIBE`: only the channel's shard carries the cloud's
//! `SPUBLISH`); messages come as `SMessage` pushes. Writes are single
//! commands routed by key, or pipelines on one key (one slot).
//!
//! redis-rs's manager reconnects and resubscribes by itself after a blip.
//! Its cluster connection reconnects each node and resubscribes on a node
//! it reconnects to, but not where a slot moved: a node that loses the
//! channel's slot (failover, resharding) drops the subscription with a
//! `SUNSUBSCRIBE` push, and a node that dies leaves it nowhere. Both make
//! the link build a new connection, which reads the slot map afresh.
//! When the connection stays broken (Redis refusing the login because the
//! agent's ACL user was lost in a restart, or several heartbeats failing in
//! a row), the link builds a new one in the background and swaps it in for
//! everything that writes for the agent (see [`crate::redis_conn`]). All
//! reconnection waits come from one [`Backoff`], reset by a working
//! heartbeat.
//!
//! The heartbeat writes `presence:{id}`, and is the only place the agent's
//! `online` turns true: the cloud answers "offline" until that key exists,
//! so saying online any earlier (at subscription) let a prompt sent right
//! after pairing be refused under load.
//!
//! The actor drives the link in two steps, so that its `select!` stays
//! cancel-safe: [`Link::wake`] only waits (and may be dropped when another
//! branch wins), [`Link::handle`] does the work and runs to its end.

use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

use redis::{PushInfo, PushKind};
use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::names;
use remoteagent_rediskit::{Conn, Options, conn as rconn};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, Interval};

use super::spec::AgentSpec;
use crate::redis_conn::{SharedConn, agent_target, is_auth_error};
use crate::util::time::{join_opt, sleep_until_opt};

/// Largest message accepted on the command channel. A signed envelope with
/// the largest allowed prompt is well below this.
const MAX_ENVELOPE_BYTES: usize = 64 * 1024 + remoteagent_proto::events::MAX_PROMPT_BYTES * 2;
/// Consecutive failed heartbeats after which the connection is rebuilt
/// (at once when Redis refused the login).
const REBUILD_AFTER_FAILURES: u32 = 3;
/// Waits between attempts of the first connection (the actor's loop).
pub(super) const CONNECT_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
/// Longest wait between two reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Waits between reconnection attempts once connected.
const RECONNECT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), RECONNECT_MAX_DELAY);
/// Longest wait for one heartbeat; a slower one counts as failed.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a new connection and its subscription.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long after a node dropped the subscription (its slot moved) the new
/// connection reads the slot map: the cluster's nodes learn of a failover
/// over their bus within milliseconds, but not all at once.
const SLOT_MOVE_SETTLE: Duration = Duration::from_secs(1);
/// Longest wait for each of the last calls when the agent stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// What it takes to log in to Redis as the agent (owned, so that a
/// reconnection can run in a task of its own).
#[derive(Clone)]
struct RedisLogin {
    url: String,
    username: String,
    /// The agent JWT. Never logged.
    password: SecretString,
}

/// Everything the link needs before its first connection exists.
pub(super) struct LinkSetup {
    login: RedisLogin,
    channel: String,
    presence_key: String,
    hostname: String,
    /// Said in the presence value (`proto::modes::PresenceModes`).
    takes_modes: bool,
    /// Said in the presence value (`proto::worktrees::PresenceWorktrees`):
    /// a prompt while busy runs in a worktree, so the cloud need not queue.
    worktrees: bool,
    online: watch::Sender<bool>,
    push_tx: mpsc::UnboundedSender<PushInfo>,
    push_rx: mpsc::UnboundedReceiver<PushInfo>,
}

impl LinkSetup {
    /// `online` is the agent's flag, written only by the link from now on.
    pub(super) fn new(spec: &AgentSpec, online: watch::Sender<bool>, hostname: String) -> Self {
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        LinkSetup {
            login: RedisLogin {
                url: spec.redis_url.clone(),
                username: spec.redis_username.clone(),
                password: spec.jwt.clone(),
            },
            channel: names::agent_channel(&spec.id),
            presence_key: names::presence_key(&spec.id),
            hostname,
            takes_modes: crate::approval::modes::takes_modes(&spec.runner),
            worktrees: false,
            online,
            push_tx,
            push_rx,
        }
    }

    /// One attempt at connecting and subscribing; the caller retries with
    /// [`CONNECT_BACKOFF`].
    pub(super) async fn connect(&self) -> redis::RedisResult<Conn> {
        connect_and_subscribe(
            self.login.clone(),
            self.channel.clone(),
            self.push_tx.clone(),
        )
        .await
    }

    /// The link over `conn`, a connection [`LinkSetup::connect`] made. Not
    /// online yet: that waits for the first heartbeat.
    pub(super) fn into_link(self, conn: Conn) -> Link {
        let mut heartbeat = tokio::time::interval(Duration::from_secs(names::HEARTBEAT_SECS));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Link {
            conn: SharedConn::new(conn),
            setup: self,
            health: Health::default(),
            heartbeat,
            reconnect_at: None,
            backoff: RECONNECT_BACKOFF,
            rebuild: None,
        }
    }
}

/// What the link hands the actor.
#[derive(Debug)]
pub(super) enum LinkEvent {
    /// A message on the command channel: an envelope's text, not yet
    /// verified.
    Message(String),
    /// The subscription's messages stopped for good: the agent stops.
    Closed,
}

/// What woke the link up; handed back to [`Link::handle`].
pub(super) enum Wake {
    Push(Option<PushInfo>),
    Heartbeat,
    Reconnect,
    Rebuilt(Result<redis::RedisResult<Conn>, JoinError>),
}

/// Health of the connection, as its heartbeats see it.
#[derive(Debug, Default)]
struct Health {
    /// Heartbeats that failed in a row.
    failures: u32,
    /// The last failure was Redis refusing the agent's credentials.
    auth_refused: bool,
    /// On a cluster, the subscription may be gone or stale (see
    /// [`Link::on_push`]): only a new connection brings it back, so a
    /// working heartbeat does not clear this.
    subscription_lost: bool,
}

impl Health {
    /// The connection manager will not recover by itself: build a new one.
    fn needs_rebuild(&self) -> bool {
        self.auth_refused || self.subscription_lost || self.failures >= REBUILD_AFTER_FAILURES
    }
}

/// A connected link (see the module comment).
pub(super) struct Link {
    setup: LinkSetup,
    /// Shared with the sessions' output writers, which follow a rebuild.
    conn: SharedConn,
    health: Health,
    heartbeat: Interval,
    /// After a disconnection or a failed heartbeat, ping soon so the
    /// manager reconnects and resubscribes without waiting for the next
    /// heartbeat; when it cannot (see [`Health::needs_rebuild`]), a new
    /// connection is built in the background instead.
    reconnect_at: Option<Instant>,
    backoff: Backoff,
    rebuild: Option<JoinHandle<redis::RedisResult<Conn>>>,
}

impl Link {
    /// The connection, for everything that writes for the agent.
    /// Whether presence says the agent takes parallel runs (worktrees);
    /// written with the next heartbeat.
    pub(super) fn set_worktrees(&mut self, on: bool) {
        self.setup.worktrees = on;
    }

    pub(super) fn conn(&self) -> SharedConn {
        self.conn.clone()
    }

    /// Waits for something to do. Cancel-safe: it only waits.
    pub(super) async fn wake(&mut self) -> Wake {
        tokio::select! {
            push = self.setup.push_rx.recv() => Wake::Push(push),
            _ = self.heartbeat.tick() => Wake::Heartbeat,
            _ = sleep_until_opt(self.reconnect_at) => Wake::Reconnect,
            built = join_opt(&mut self.rebuild) => Wake::Rebuilt(built),
        }
    }

    /// Does what `wake` asks; `busy` (a session runs) goes into presence.
    /// Returns what the actor must act on, if anything.
    pub(super) async fn handle(&mut self, wake: Wake, busy: bool) -> Option<LinkEvent> {
        match wake {
            Wake::Push(None) => return Some(LinkEvent::Closed),
            Wake::Push(Some(push)) => return self.on_push(push, busy).await,
            Wake::Heartbeat => {
                if !self.heartbeat(busy).await
                    && self.reconnect_at.is_none()
                    && self.rebuild.is_none()
                {
                    self.schedule_reconnect();
                }
            }
            Wake::Reconnect => {
                self.reconnect_at = None;
                if self.health.needs_rebuild() {
                    self.start_rebuild();
                } else if self.heartbeat(busy).await {
                    tracing::info!("Redis connection back");
                } else {
                    self.schedule_reconnect();
                }
            }
            Wake::Rebuilt(built) => {
                self.rebuild = None;
                match built {
                    Ok(Ok(conn)) => {
                        self.conn.replace(conn);
                        self.health = Health::default();
                        self.backoff.reset();
                        if self.heartbeat(busy).await {
                            tracing::info!("Redis connection rebuilt; subscribed again");
                        } else {
                            self.schedule_reconnect();
                        }
                    }
                    Ok(Err(e)) => {
                        if is_auth_error(&e) {
                            self.health.auth_refused = true;
                        }
                        let retry_in = self.schedule_reconnect();
                        tracing::warn!(error = %e, ?retry_in, "cannot build a new Redis connection; retrying");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the Redis connection task failed; retrying");
                        self.schedule_reconnect();
                    }
                }
            }
        }
        None
    }

    async fn on_push(&mut self, push: PushInfo, busy: bool) -> Option<LinkEvent> {
        match push.kind {
            PushKind::Disconnection => {
                self.setup.online.send_replace(false);
                tracing::warn!("Redis connection lost; reconnecting");
                // A cluster connection reconnects each node, but when a node
                // is gone for good its replica serves the channel's slot and
                // nothing moves the subscription there until the slot map is
                // read again: a new connection reads it. (A standalone
                // manager resubscribes by itself.)
                if self.conn.get().is_cluster() {
                    self.health.subscription_lost = true;
                }
                if self.rebuild.is_none() {
                    self.schedule_reconnect();
                }
                None
            }
            // `SSubscribe`/`SMessage`: the sharded kinds, on a cluster.
            PushKind::Subscribe | PushKind::SSubscribe => {
                // Subscribed again after a reconnect. Presence may have
                // expired during the outage: write it before saying online.
                self.heartbeat(busy).await;
                None
            }
            // Only `close` unsubscribes, and its pushes are never read: this
            // one the server sent by itself. On a cluster a node drops a
            // sharded subscription when the channel's slot leaves it (a
            // failover, a resharding), and redis-rs forgets the channel with
            // it. Subscribing again on this connection would follow its
            // stale slot map to the old node, now a replica, which accepts
            // a sharded subscription too: messages would still come, but the
            // cloud's `SPUBLISH` at the new primary would count no receiver
            // and say the agent is offline. A new connection reads the slot
            // map afresh and subscribes at the slot's owner.
            PushKind::Unsubscribe | PushKind::SUnsubscribe => {
                if push_channel(&push) == Some(self.setup.channel.as_bytes()) {
                    tracing::info!(
                        "Redis dropped the command channel's subscription (its slot moved); connecting again"
                    );
                    self.setup.online.send_replace(false);
                    self.health.subscription_lost = true;
                    // Not at once: the node that dropped it learnt of the
                    // move first, and a slot map read from a node that has
                    // not yet would send the new subscription to the old
                    // node again.
                    if self.rebuild.is_none() {
                        self.reconnect_at = Some(Instant::now() + SLOT_MOVE_SETTLE);
                    }
                }
                None
            }
            PushKind::Message | PushKind::SMessage => {
                let msg = redis::Msg::from_push_info(push)?;
                if msg.get_channel_name() != self.setup.channel {
                    return None;
                }
                let payload = msg.get_payload_bytes();
                if payload.len() > MAX_ENVELOPE_BYTES {
                    tracing::warn!(
                        bytes = payload.len(),
                        "dropped a command message: too large"
                    );
                    return None;
                }
                match std::str::from_utf8(payload) {
                    Ok(token) => Some(LinkEvent::Message(token.trim().to_string())),
                    Err(_) => {
                        tracing::warn!("dropped a command message: not UTF-8");
                        None
                    }
                }
            }
            _ => None,
        }
    }

    /// Sets the next reconnection attempt from the backoff; returns the wait.
    fn schedule_reconnect(&mut self) -> Duration {
        // Retries forever: `next_delay` always has a wait; its cap if not.
        let delay = self.backoff.next_delay().unwrap_or(RECONNECT_MAX_DELAY);
        self.reconnect_at = Some(Instant::now() + delay);
        delay
    }

    fn start_rebuild(&mut self) {
        tracing::info!(
            failures = self.health.failures,
            auth_refused = self.health.auth_refused,
            "building a new Redis connection"
        );
        let login = self.setup.login.clone();
        let channel = self.setup.channel.clone();
        let push_tx = self.setup.push_tx.clone();
        self.rebuild = Some(tokio::spawn(async move {
            tokio::time::timeout(
                REBUILD_TIMEOUT,
                connect_and_subscribe(login, channel, push_tx),
            )
            .await
            .unwrap_or_else(|_| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "connecting timed out",
                )))
            })
        }));
    }

    /// Refreshes `presence:{id}`; true when Redis answered. Failures are
    /// counted towards a rebuild.
    pub(super) async fn heartbeat(&mut self, busy: bool) -> bool {
        let value = serde_json::json!({
            "hostname": self.setup.hostname,
            "version": env!("CARGO_PKG_VERSION"),
            "busy": busy,
            "modes": self.setup.takes_modes,
            "worktrees": self.setup.worktrees,
        })
        .to_string();
        let mut set = redis::cmd("SET");
        set.arg(&self.setup.presence_key)
            .arg(value)
            .arg("EX")
            .arg(names::PRESENCE_TTL_SECS);
        // Bounded: a manager that is reconnecting makes callers wait, and
        // the agent must stay responsive to its supervisor meanwhile.
        let res = tokio::time::timeout(HEARTBEAT_TIMEOUT, set.query_async::<()>(&mut self.conn))
            .await
            .unwrap_or_else(|_| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "heartbeat timed out",
                )))
            });
        match res {
            Ok(()) => {
                // The one place `online` turns true: the presence key the
                // cloud checks exists now. The manager resubscribes on
                // reconnect, so a working connection means the subscription
                // is back too; unless a cluster node dropped it, and then a
                // new connection is on its way.
                if !self.health.subscription_lost {
                    self.setup.online.send_replace(true);
                }
                self.health = Health {
                    subscription_lost: self.health.subscription_lost,
                    ..Health::default()
                };
                self.backoff.reset();
                true
            }
            Err(e) => {
                self.health.failures += 1;
                self.health.auth_refused = is_auth_error(&e);
                tracing::debug!(error = %e, failures = self.health.failures, "presence heartbeat failed");
                false
            }
        }
    }

    /// The agent stops: no more rebuilding, presence removed, unsubscribed,
    /// offline.
    pub(super) async fn close(&mut self) {
        if let Some(r) = self.rebuild.take() {
            r.abort();
        }
        let mut del = redis::cmd("DEL");
        del.arg(&self.setup.presence_key);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, del.query_async::<()>(&mut self.conn)).await;
        let mut conn = self.conn.get();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.unsubscribe(&self.setup.channel)).await;
        self.setup.online.send_replace(false);
    }
}

/// The channel a subscription push is about.
fn push_channel(push: &PushInfo) -> Option<&[u8]> {
    match push.data.first()? {
        redis::Value::BulkString(name) => Some(name),
        redis::Value::SimpleString(name) => Some(name.as_bytes()),
        _ => None,
    }
}

/// A new connection and subscription to `channel`: a manager and
/// `SUBSCRIBE` on a standalone server, a cluster connection and `SSUBSCRIBE`
/// on a Redis Cluster (the cloud then `SPUBLISH`es to the channel's shard).
async fn connect_and_subscribe(
    login: RedisLogin,
    channel: String,
    push_tx: mpsc::UnboundedSender<PushInfo>,
) -> redis::RedisResult<Conn> {
    let target = agent_target(&login.url, &login.username, login.password.expose_secret())?;
    // Few quick retries inside the connection (a blip heals in well under a
    // second); longer outages are the link's job, with its own backoff and
    // a fresh connection when this one gives up for good.
    let options = Options {
        push: Some(push_tx),
        resp3: true,
        connection_timeout: Some(Duration::from_secs(5)),
        response_timeout: Some(Duration::from_secs(10)),
        retries: Some(3),
        max_delay: Some(Duration::from_secs(2)),
    };
    let mut conn = rconn::managed(&target, &options).await?;
    conn.subscribe(&channel).await?;
    Ok(conn)
}
