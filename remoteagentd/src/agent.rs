//! The per-agent task: one per paired project folder.
//!
//! Each agent holds ONE Redis connection (a RESP3 `ConnectionManager`) used
//! both to SUBSCRIBE to its command channel and to write its output streams
//! and presence key; it reconnects and resubscribes by itself. Every message
//! on the channel must be an envelope signed by the cloud key pinned at
//! pairing, addressed to this agent, unexpired and never seen before;
//! anything else is dropped with a warning. One session runs at a time.
//!
//! The supervisor talks to the task through [`AgentHandle`]; agents never
//! wait on each other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
use remoteagent_proto::envelope::{self, ReplayGuard};
use remoteagent_proto::events::{
    CommandEvent, CommandPayload, DonePayload, DoneStatus, NoticePayload, OutputEvent,
};
use remoteagent_proto::keys::CloudPublicKey;
use remoteagent_proto::runner::RunnerSpec;
use remoteagent_proto::{AgentId, SessionId, names, now_secs};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::output::OutputWriter;
use session::{SessionContext, run_session};

mod session;

/// Everything needed to run one paired agent.
pub struct AgentSpec {
    pub id: AgentId,
    pub name: String,
    /// The project folder the runner is spawned in.
    pub path: PathBuf,
    pub runner: RunnerSpec,
    /// `redis://host:port` without credentials.
    pub redis_url: String,
    /// The agent's Redis ACL user (empty: no ACL, default user).
    pub redis_username: String,
    /// The agent JWT, also the Redis password. Never logged.
    pub jwt: String,
    /// The cloud key pinned at pairing; every envelope is verified with it.
    pub cloud_public_key: CloudPublicKey,
}

impl std::fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSpec")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("path", &self.path)
            .field("runner", &self.runner)
            .field("redis_url", &self.redis_url)
            .field("redis_username", &self.redis_username)
            .field("jwt", &"hidden")
            .finish_non_exhaustive()
    }
}

/// Daemon-wide settings shared by all agents (from the config file).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Root of the session logs: `{log_root}/{agentId}/{sessionId}.log`.
    pub log_root: PathBuf,
    /// Time between SIGTERM and SIGKILL when aborting a runner.
    pub abort_grace: Duration,
    /// Largest prompt accepted (bytes).
    pub max_prompt_bytes: usize,
}

/// What an agent task tells the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentNotice {
    /// A verified `unpaired` envelope arrived: the supervisor forgets the agent
    /// (metadata, keyring entry) and drops its handle.
    Unpaired(AgentId),
}

/// Largest message accepted on the command channel. A signed envelope with
/// the largest allowed prompt is well below this.
const MAX_ENVELOPE_BYTES: usize = 64 * 1024 + remoteagent_proto::events::MAX_PROMPT_BYTES * 2;
/// How long shutdown waits for a session's `done` beyond the abort grace.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(10);

/// State read by the handle without a round trip to the task.
#[derive(Default)]
struct Shared {
    online: AtomicBool,
    running: Mutex<Option<SessionId>>,
}

impl Shared {
    fn set_running(&self, id: Option<SessionId>) {
        if let Ok(mut r) = self.running.lock() {
            *r = id;
        }
    }
}

enum Control {
    Abort(oneshot::Sender<Option<SessionId>>),
    Shutdown(oneshot::Sender<()>),
}

/// Handle to a running agent task, owned by the supervisor.
pub struct AgentHandle {
    id: AgentId,
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    task: JoinHandle<()>,
}

impl AgentHandle {
    /// Starts the agent's task: connect to Redis as the agent's ACL user,
    /// subscribe to `agent:{id}`, heartbeat `presence:{id}`, run sessions.
    /// Returns at once; connection problems are retried in the background.
    pub fn spawn(
        spec: AgentSpec,
        settings: Arc<AgentSettings>,
        notices: mpsc::Sender<AgentNotice>,
    ) -> AgentHandle {
        let id = spec.id.clone();
        let shared = Arc::new(Shared::default());
        let (control, control_rx) = mpsc::channel(8);
        let span = tracing::info_span!("agent", agent = %spec.id, name = %spec.name);
        let task = tokio::spawn(
            run_agent(spec, settings, notices, shared.clone(), control_rx).instrument(span),
        );
        AgentHandle {
            id,
            shared,
            control,
            task,
        }
    }

    pub fn id(&self) -> &AgentId {
        &self.id
    }

    /// Subscribed to its channel right now.
    pub fn online(&self) -> bool {
        self.shared.online.load(Ordering::SeqCst)
    }

    pub fn running_session(&self) -> Option<SessionId> {
        self.shared.running.lock().ok().and_then(|r| r.clone())
    }

    /// Aborts the running session (as `remoteagentctl stop` asks); `None`
    /// when nothing was running. Returns once `done {aborted}` is published.
    pub async fn abort_running(&self) -> Option<SessionId> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Control::Abort(tx)).await.ok()?;
        rx.await.ok().flatten()
    }

    /// Stops the task: abort the running session (its `done` is published),
    /// delete the presence key, close the connection.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

/// A session in progress.
struct RunningSession {
    id: SessionId,
    /// Cancelled to abort the runner (SIGTERM, then SIGKILL after the grace).
    abort: CancellationToken,
    /// Cancelled to stop retrying Redis writes (shutdown with Redis gone).
    give_up: CancellationToken,
    join: JoinHandle<()>,
}

struct Agent {
    spec: AgentSpec,
    settings: Arc<AgentSettings>,
    shared: Arc<Shared>,
    notices: mpsc::Sender<AgentNotice>,
    conn: ConnectionManager,
    channel: String,
    replay: ReplayGuard,
    session: Option<RunningSession>,
    hostname: String,
}

enum Flow {
    Continue,
    Stop,
}

async fn run_agent(
    spec: AgentSpec,
    settings: Arc<AgentSettings>,
    notices: mpsc::Sender<AgentNotice>,
    shared: Arc<Shared>,
    mut control: mpsc::Receiver<Control>,
) {
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<PushInfo>();
    let channel = names::agent_channel(&spec.id);

    // Connect and subscribe, retrying with backoff, while staying
    // responsive to the supervisor.
    let mut delay = Duration::from_millis(200);
    let conn = loop {
        match connect_and_subscribe(&spec, &channel, push_tx.clone()).await {
            Ok(conn) => break conn,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot reach Redis; retrying");
                let sleep = tokio::time::sleep(jitter(delay));
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        msg = control.recv() => match msg {
                            Some(Control::Abort(tx)) => { let _ = tx.send(None); }
                            Some(Control::Shutdown(tx)) => { let _ = tx.send(()); return; }
                            None => return,
                        }
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    };
    shared.online.store(true, Ordering::SeqCst);
    tracing::info!("subscribed to its command channel");

    let mut agent = Agent {
        spec,
        settings,
        shared,
        notices,
        conn,
        channel,
        replay: ReplayGuard::new(),
        session: None,
        hostname: hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    agent.heartbeat().await;

    let mut heartbeat = tokio::time::interval(Duration::from_secs(names::HEARTBEAT_SECS));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // After a disconnection, ping soon (with backoff) so the manager
    // reconnects and resubscribes without waiting for the next heartbeat.
    let mut reconnect_at: Option<Instant> = None;
    let mut reconnect_delay = Duration::from_millis(100);

    loop {
        tokio::select! {
            push = push_rx.recv() => {
                let Some(push) = push else { break };
                if matches!(push.kind, PushKind::Disconnection) {
                    agent.shared.online.store(false, Ordering::SeqCst);
                    tracing::warn!("Redis connection lost; reconnecting");
                    reconnect_at = Some(Instant::now() + reconnect_delay);
                    continue;
                }
                if let Flow::Stop = agent.on_push(push).await {
                    break;
                }
            }
            _ = heartbeat.tick() => {
                agent.heartbeat().await;
            }
            _ = sleep_until_opt(reconnect_at) => {
                if agent.heartbeat().await {
                    reconnect_at = None;
                    reconnect_delay = Duration::from_millis(100);
                    tracing::info!("Redis connection back");
                } else {
                    reconnect_delay = (reconnect_delay * 2).min(Duration::from_secs(5));
                    reconnect_at = Some(Instant::now() + jitter(reconnect_delay));
                }
            }
            msg = control.recv() => match msg {
                Some(Control::Abort(tx)) => {
                    let id = agent.abort_and_wait().await;
                    let _ = tx.send(id);
                }
                Some(Control::Shutdown(tx)) => {
                    agent.stop().await;
                    let _ = tx.send(());
                    return;
                }
                None => break,
            },
            _ = session_done(&mut agent.session) => {
                agent.session = None;
                agent.shared.set_running(None);
                agent.heartbeat().await;
            }
        }
    }
    agent.stop().await;
}

impl Agent {
    async fn on_push(&mut self, push: PushInfo) -> Flow {
        match push.kind {
            PushKind::Subscribe => {
                self.shared.online.store(true, Ordering::SeqCst);
                Flow::Continue
            }
            PushKind::Message => {
                let Some(msg) = redis::Msg::from_push_info(push) else {
                    return Flow::Continue;
                };
                if msg.get_channel_name() != self.channel {
                    return Flow::Continue;
                }
                let payload = msg.get_payload_bytes();
                if payload.len() > MAX_ENVELOPE_BYTES {
                    tracing::warn!(
                        bytes = payload.len(),
                        "dropped a command message: too large"
                    );
                    return Flow::Continue;
                }
                match std::str::from_utf8(payload) {
                    Ok(token) => {
                        let token = token.trim().to_string();
                        self.on_envelope(&token).await
                    }
                    Err(_) => {
                        tracing::warn!("dropped a command message: not UTF-8");
                        Flow::Continue
                    }
                }
            }
            _ => Flow::Continue,
        }
    }

    async fn on_envelope(&mut self, token: &str) -> Flow {
        let claims = match envelope::verify(&self.spec.cloud_public_key, &self.spec.id, token) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(reason = %e, "dropped a command envelope");
                return Flow::Continue;
            }
        };
        if let Err(e) = self.replay.check(&claims, now_secs()) {
            tracing::warn!(reason = %e, jti = %claims.jti, "dropped a command envelope");
            return Flow::Continue;
        }
        match claims.command {
            CommandEvent::Command(cmd) => self.start_session(cmd).await,
            CommandEvent::Abort(abort) => match &self.session {
                Some(s) if s.id == abort.session_id => {
                    tracing::info!(session = %s.id, "abort requested");
                    s.abort.cancel();
                }
                _ => {
                    tracing::info!(session = %abort.session_id, "abort for a session that is not running")
                }
            },
            CommandEvent::Approval(a) => {
                // Tool approval from the phone is a later feature: runners
                // are not started in a mode that asks yet.
                tracing::info!(session = %a.session_id, request = %a.request_id, "approval answer ignored: no runner is waiting for one");
            }
            CommandEvent::Unpaired(_) => {
                tracing::info!("unpaired by the cloud");
                let _ = self
                    .notices
                    .send(AgentNotice::Unpaired(self.spec.id.clone()))
                    .await;
                return Flow::Stop;
            }
            CommandEvent::Unknown => {
                tracing::info!("skipped a command of a kind this daemon does not know")
            }
        }
        Flow::Continue
    }

    async fn start_session(&mut self, cmd: CommandPayload) {
        let sid = cmd.session_id.clone();
        // The prompt's own faults first: they stay faults when the agent is idle.
        let refusal = if cmd.prompt.len() > self.settings.max_prompt_bytes {
            Some(format!(
                "the prompt is {} bytes; the limit is {}",
                cmd.prompt.len(),
                self.settings.max_prompt_bytes
            ))
        } else if cmd.prompt.trim().is_empty() {
            Some("the prompt is empty".to_string())
        } else if let Some(busy) = &self.session {
            Some(format!(
                "{} is busy with another session ({}); /stop it or wait for it to finish",
                self.spec.name, busy.id
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            tracing::info!(session = %sid, reason = %message, "command refused");
            let key = names::output_stream(&self.spec.id, &sid);
            let mut out = OutputWriter::new(self.conn.clone(), key, CancellationToken::new());
            let give_up = out_give_up();
            let _ = tokio::time::timeout(give_up, async {
                out.event(OutputEvent::Notice(NoticePayload {
                    text: message.clone(),
                }))
                .await?;
                out.finish(DonePayload {
                    status: DoneStatus::Rejected,
                    exit_code: None,
                    duration_ms: 0,
                    message: Some(message),
                    chunks: 0,
                })
                .await
            })
            .await;
            return;
        }

        let abort = CancellationToken::new();
        let give_up = CancellationToken::new();
        let ctx = SessionContext {
            conn: self.conn.clone(),
            agent_id: self.spec.id.clone(),
            path: self.spec.path.clone(),
            runner: self.spec.runner.clone(),
            settings: self.settings.clone(),
            command: cmd,
        };
        let span = tracing::info_span!("session", session = %sid);
        let join = tokio::spawn(run_session(ctx, abort.clone(), give_up.clone()).instrument(span));
        self.shared.set_running(Some(sid.clone()));
        self.session = Some(RunningSession {
            id: sid,
            abort,
            give_up,
            join,
        });
        self.heartbeat().await;
    }

    /// Aborts the running session and waits for its `done`.
    async fn abort_and_wait(&mut self) -> Option<SessionId> {
        let session = self.session.take()?;
        session.abort.cancel();
        let wait = self.settings.abort_grace + SHUTDOWN_SLACK;
        let mut join = session.join;
        if tokio::time::timeout(wait, &mut join).await.is_err() {
            // Redis is unreachable: stop retrying the last writes.
            session.give_up.cancel();
            let _ = join.await;
        }
        self.shared.set_running(None);
        self.heartbeat().await;
        Some(session.id)
    }

    /// Refreshes `presence:{id}`; true when Redis answered.
    async fn heartbeat(&mut self) -> bool {
        let value = serde_json::json!({
            "hostname": self.hostname,
            "version": env!("CARGO_PKG_VERSION"),
            "busy": self.session.is_some(),
        })
        .to_string();
        let res: redis::RedisResult<()> = redis::cmd("SET")
            .arg(names::presence_key(&self.spec.id))
            .arg(value)
            .arg("EX")
            .arg(names::PRESENCE_TTL_SECS)
            .query_async(&mut self.conn)
            .await;
        match res {
            Ok(()) => {
                // The manager resubscribes on reconnect; a working
                // connection means the subscription is back.
                self.shared.online.store(true, Ordering::SeqCst);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "presence heartbeat failed");
                false
            }
        }
    }

    /// Shutdown: abort the session (publishing its `done`), remove presence.
    async fn stop(&mut self) {
        self.abort_and_wait().await;
        let mut del = redis::cmd("DEL");
        del.arg(names::presence_key(&self.spec.id));
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            del.query_async::<()>(&mut self.conn),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(3), self.conn.unsubscribe(&self.channel))
            .await;
        self.shared.online.store(false, Ordering::SeqCst);
        tracing::info!("agent stopped");
    }
}

fn out_give_up() -> Duration {
    Duration::from_secs(10)
}

async fn connect_and_subscribe(
    spec: &AgentSpec,
    channel: &str,
    push_tx: mpsc::UnboundedSender<PushInfo>,
) -> redis::RedisResult<ConnectionManager> {
    let info = spec.redis_url.as_str().into_connection_info()?;
    let mut settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    if !spec.redis_username.is_empty() {
        settings = settings
            .set_username(&spec.redis_username)
            .set_password(&spec.jwt);
    }
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    let config = ConnectionManagerConfig::new()
        .set_push_sender(push_tx)
        .set_automatic_resubscription()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_max_delay(Duration::from_secs(2));
    let mut conn = ConnectionManager::new_with_config(client, config).await?;
    conn.subscribe(channel).await?;
    Ok(conn)
}

/// Adds up to 25 % random jitter so many agents do not reconnect in step.
fn jitter(d: Duration) -> Duration {
    let extra = rand::random::<f64>() * 0.25;
    d + d.mul_f64(extra)
}

/// Sleeps until `at`; forever when there is nothing to wait for.
pub(crate) async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the running session's task ends; never without one.
async fn session_done(session: &mut Option<RunningSession>) {
    match session {
        Some(s) => {
            let _ = (&mut s.join).await;
        }
        None => std::future::pending().await,
    }
}
