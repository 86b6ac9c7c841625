//! The per-agent task: one per paired project folder.
//!
//! Each agent holds ONE Redis connection (a RESP3 `ConnectionManager`) used
//! both to SUBSCRIBE to its command channel and to write its output streams
//! and presence key; it reconnects and resubscribes by itself. When it stays
//! broken (Redis refusing the login because the agent's ACL user was lost in
//! a restart, or several heartbeats failing in a row), the task builds a new
//! one, with backoff and jitter, and swaps it in for everything that writes
//! for the agent (see [`crate::redis_conn`]). Every message
//! on the channel must be an envelope signed by the cloud key pinned at
//! pairing, addressed to this agent, unexpired and never seen before;
//! anything else is dropped with a warning. One session runs at a time.
//!
//! The supervisor talks to the task through [`AgentHandle`]; agents never
//! wait on each other.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
use remoteagent_proto::envelope;
use remoteagent_proto::events::{
    CommandEvent, CommandPayload, DonePayload, DoneStatus, NoticePayload, OutputEvent,
};
use remoteagent_proto::keys::CloudPublicKey;
use remoteagent_proto::runner::RunnerSpec;
use remoteagent_proto::{AgentId, SessionId, names, now_secs};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::approval::session::SessionApprovals;
use crate::approval::{self, ApprovalAnswer, ApprovalAsk, ApprovalSenders, Decision};
use crate::output::OutputWriter;
use crate::redis_conn::{SharedConn, is_auth_error};
use crate::seen_envelopes::{AgentRecord, SeenEnvelopes, SeenError};
use crate::session_log::session_log_path;
use session::{SessionContext, SessionOutcome, run_session};

mod orphans;
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
    /// The last conversation id the runner reported (Claude's session id,
    /// Codex's thread id); a command that continues resumes it.
    pub conversation: Option<String>,
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
            .field("conversation", &self.conversation)
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
    /// Tool approval: the policies, and how Claude's hook reaches us.
    pub approval: approval::ApprovalSettings,
    /// The envelopes already acted on, per agent, kept on disk.
    pub seen: Arc<SeenEnvelopes>,
    /// Bytes of output per session written to its stream (`[output]`).
    pub stream_budget: u64,
    /// What the local session logs may hold (`[logs]`).
    pub log_limits: crate::session_log::LogLimits,
}

/// What an agent task tells the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentNotice {
    /// A verified `unpaired` envelope arrived: the supervisor forgets the agent
    /// (metadata, keyring entry) and drops its handle.
    Unpaired(AgentId),
    /// A session reported a conversation id other than the stored one: the
    /// supervisor records it in the agent's metadata, so that the next
    /// prompt resumes it even after a restart.
    Conversation {
        agent: AgentId,
        conversation: String,
    },
}

/// Largest message accepted on the command channel. A signed envelope with
/// the largest allowed prompt is well below this.
const MAX_ENVELOPE_BYTES: usize = 64 * 1024 + remoteagent_proto::events::MAX_PROMPT_BYTES * 2;
/// Why an approval question for a session we do not run is denied.
const NOT_RUNNING: &str = "no such session running";
/// How long shutdown waits for a session's `done` beyond the abort grace.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(10);
/// Consecutive failed heartbeats after which the connection is rebuilt
/// (at once when Redis refused the login).
const REBUILD_AFTER_FAILURES: u32 = 3;
/// Longest wait between two reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Longest wait for one heartbeat; a slower one counts as failed.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the check that a new session has no stream yet.
const STREAM_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a new connection and its subscription.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(15);

/// State read by the handle without a round trip to the task.
#[derive(Default)]
struct Shared {
    /// Presence written and the connection working; a watch so the
    /// pairing flow can wait for the first `true` without polling.
    online: watch::Sender<bool>,
    running: Mutex<Option<SessionId>>,
    /// The last conversation id learned while the task ran (read once the
    /// task ended, so no id is lost to a notice still in flight).
    conversation: Mutex<Option<String>>,
}

impl Shared {
    fn set_running(&self, id: Option<SessionId>) {
        if let Ok(mut r) = self.running.lock() {
            *r = id;
        }
    }

    fn set_conversation(&self, id: String) {
        if let Ok(mut c) = self.conversation.lock() {
            *c = Some(id);
        }
    }
}

enum Control {
    Abort(oneshot::Sender<Option<SessionId>>),
    Shutdown(oneshot::Sender<()>),
    /// A runner's tool-approval question for one of our sessions.
    Approval(SessionId, ApprovalAsk),
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

    /// Online right now: subscribed, and its presence key written.
    pub fn online(&self) -> bool {
        *self.shared.online.borrow()
    }

    /// Watches `online`, for a caller that waits for it to change.
    pub fn online_watch(&self) -> watch::Receiver<bool> {
        self.shared.online.subscribe()
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

    /// Asks the running session `session` whether its runner may use `tool`;
    /// resolves once the project's policy, the phone or the timeout decided.
    /// A session that is not running gets a DENY.
    ///
    /// The future holds no reference to the handle, so a question waiting
    /// minutes for the phone never delays the agent's shutdown or unpairing
    /// (which deny it, through the session's end).
    pub fn ask_approval(
        &self,
        session: SessionId,
        tool: String,
        input: serde_json::Value,
    ) -> impl std::future::Future<Output = Decision> + Send + 'static {
        let control = self.control.clone();
        async move {
            let (reply, decision) = oneshot::channel();
            let ask = ApprovalAsk { tool, input, reply };
            if control.send(Control::Approval(session, ask)).await.is_err() {
                return Decision::deny("the agent is stopping");
            }
            // The sender is dropped unanswered only when the session ended.
            decision
                .await
                .unwrap_or_else(|_| Decision::deny(approval::session::SESSION_ENDED))
        }
    }

    /// Stops the task: abort the running session (its `done` is published),
    /// delete the presence key, close the connection. Returns the last
    /// conversation id its sessions reported, if any did.
    pub async fn shutdown(self) -> Option<String> {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
        self.shared.conversation.lock().ok().and_then(|c| c.clone())
    }
}

/// A session in progress.
struct RunningSession {
    id: SessionId,
    /// Cancelled to abort the runner (SIGTERM, then SIGKILL after the grace).
    abort: CancellationToken,
    /// Cancelled to stop retrying Redis writes (shutdown with Redis gone).
    give_up: CancellationToken,
    /// Tool-approval questions and the phone's answers, to the session.
    approvals: ApprovalSenders,
    join: JoinHandle<SessionOutcome>,
}

/// Health of the agent's Redis connection, as its heartbeats see it.
#[derive(Debug, Default)]
struct Link {
    /// Heartbeats that failed in a row.
    failures: u32,
    /// The last failure was Redis refusing the agent's credentials.
    auth_refused: bool,
}

impl Link {
    /// The connection manager will not recover by itself: build a new one.
    fn needs_rebuild(&self) -> bool {
        self.auth_refused || self.failures >= REBUILD_AFTER_FAILURES
    }
}

struct Agent {
    spec: AgentSpec,
    settings: Arc<AgentSettings>,
    shared: Arc<Shared>,
    notices: mpsc::Sender<AgentNotice>,
    /// Shared with the sessions' output writers, which follow a rebuild.
    conn: SharedConn,
    link: Link,
    channel: String,
    /// The envelopes this agent already acted on (on disk, shared with
    /// any other task of this agent).
    seen: Arc<Mutex<AgentRecord>>,
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

    // Before any command is taken: a session of this task is never an
    // orphan. What an earlier daemon's runners left running ends first,
    // without waiting for Redis: it is local.
    let orphaned = orphans::find_now(&spec.id, &settings.log_root);
    orphans::end_leftover_runners(
        &spec.id,
        &settings.log_root,
        &orphaned,
        settings.abort_grace,
    )
    .await;

    // Connect and subscribe, retrying with backoff, while staying
    // responsive to the supervisor.
    let mut delay = Duration::from_millis(200);
    let conn = loop {
        match connect_and_subscribe(RedisLogin::of(&spec), channel.clone(), push_tx.clone()).await {
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
                            Some(Control::Approval(_, ask)) => {
                                let _ = ask.reply.send(Decision::deny(NOT_RUNNING));
                            }
                            None => return,
                        }
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    };
    // Not online yet: the cloud answers "offline" until `presence:{id}`
    // exists, so `online` turns true only once the first heartbeat has
    // written it (see `heartbeat`). Saying online at subscription let a
    // prompt sent right after pairing be refused under load.
    tracing::info!("subscribed to its command channel");

    // Loaded now, before the first envelope can be taken.
    let seen = settings.seen.for_agent(&spec.id);
    let mut agent = Agent {
        spec,
        settings,
        shared,
        notices,
        conn: SharedConn::new(conn),
        link: Link::default(),
        channel,
        seen,
        session: None,
        hostname: crate::pairing::clean_hostname(),
    };
    // Their streams get their `done` now that Redis can be reached.
    orphans::sweep(
        orphaned,
        &agent.spec.id,
        &agent.settings.log_root,
        agent.conn.clone(),
    );
    agent.heartbeat().await;

    let mut heartbeat = tokio::time::interval(Duration::from_secs(names::HEARTBEAT_SECS));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // After a disconnection or a failed heartbeat, ping soon (with backoff)
    // so the manager reconnects and resubscribes without waiting for the
    // next heartbeat; when it cannot (see `Link::needs_rebuild`), build a
    // new connection in the background instead.
    let mut reconnect_at: Option<Instant> = None;
    let mut reconnect_delay = Duration::from_millis(100);
    let mut rebuild: Option<JoinHandle<redis::RedisResult<ConnectionManager>>> = None;

    loop {
        tokio::select! {
            push = push_rx.recv() => {
                let Some(push) = push else { break };
                if matches!(push.kind, PushKind::Disconnection) {
                    agent.shared.online.send_replace(false);
                    tracing::warn!("Redis connection lost; reconnecting");
                    if rebuild.is_none() {
                        reconnect_at = Some(Instant::now() + reconnect_delay);
                    }
                    continue;
                }
                if let Flow::Stop = agent.on_push(push).await {
                    break;
                }
            }
            _ = heartbeat.tick() => {
                if !agent.heartbeat().await && reconnect_at.is_none() && rebuild.is_none() {
                    reconnect_at = Some(Instant::now() + jitter(reconnect_delay));
                }
            }
            _ = sleep_until_opt(reconnect_at) => {
                reconnect_at = None;
                if agent.link.needs_rebuild() {
                    tracing::info!(failures = agent.link.failures, auth_refused = agent.link.auth_refused, "building a new Redis connection");
                    let login = RedisLogin::of(&agent.spec);
                    let channel = agent.channel.clone();
                    let push_tx = push_tx.clone();
                    rebuild = Some(tokio::spawn(async move {
                        tokio::time::timeout(REBUILD_TIMEOUT, connect_and_subscribe(login, channel, push_tx))
                            .await
                            .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "connecting timed out"))))
                    }));
                } else if agent.heartbeat().await {
                    reconnect_delay = Duration::from_millis(100);
                    tracing::info!("Redis connection back");
                } else {
                    reconnect_delay = (reconnect_delay * 2).min(RECONNECT_MAX_DELAY);
                    reconnect_at = Some(Instant::now() + jitter(reconnect_delay));
                }
            }
            built = join_opt(&mut rebuild) => {
                rebuild = None;
                match built {
                    Ok(Ok(conn)) => {
                        agent.conn.replace(conn);
                        agent.link = Link::default();
                        reconnect_delay = Duration::from_millis(100);
                        if agent.heartbeat().await {
                            tracing::info!("Redis connection rebuilt; subscribed again");
                        } else {
                            reconnect_at = Some(Instant::now() + jitter(reconnect_delay));
                        }
                    }
                    Ok(Err(e)) => {
                        if is_auth_error(&e) {
                            agent.link.auth_refused = true;
                        }
                        reconnect_delay = (reconnect_delay * 2).min(RECONNECT_MAX_DELAY);
                        tracing::warn!(error = %e, retry_in = ?reconnect_delay, "cannot build a new Redis connection; retrying");
                        reconnect_at = Some(Instant::now() + jitter(reconnect_delay));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the Redis connection task failed; retrying");
                        reconnect_at = Some(Instant::now() + jitter(reconnect_delay));
                    }
                }
            }
            msg = control.recv() => match msg {
                Some(Control::Abort(tx)) => {
                    let id = agent.abort_and_wait().await;
                    let _ = tx.send(id);
                }
                Some(Control::Shutdown(tx)) => {
                    if let Some(r) = rebuild.take() {
                        r.abort();
                    }
                    agent.stop().await;
                    let _ = tx.send(());
                    return;
                }
                Some(Control::Approval(session, ask)) => agent.route_approval(session, ask),
                None => break,
            },
            outcome = session_done(&mut agent.session) => {
                agent.session = None;
                agent.shared.set_running(None);
                agent.remember_conversation(outcome);
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
                // Subscribed again after a reconnect. Presence may have
                // expired during the outage: write it before saying online.
                self.heartbeat().await;
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
        if let Err(e) = self.record_seen(&claims).await {
            match &e {
                SeenError::Unrecordable(_) => {
                    tracing::error!(reason = %e, jti = %claims.jti, "refused a command envelope")
                }
                _ => tracing::warn!(reason = %e, jti = %claims.jti, "dropped a command envelope"),
            }
            // The owner learns why their prompt did not run. A replay is
            // not answered, nor is a session that already ran (its stream
            // has its `done`).
            if let (SeenError::Unrecordable(_), CommandEvent::Command(cmd)) = (&e, &claims.command)
                && matches!(self.session_ran_before(&cmd.session_id).await, Ok(false))
            {
                self.refuse(
                    &cmd.session_id,
                    "the daemon cannot record the command as received (is its disk full?); nothing ran".into(),
                )
                .await;
            }
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
            CommandEvent::Approval(a) => self.route_answer(a),
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

    /// Writes the envelope's id down before it is acted on; `Err`: do not
    /// act on it (seen before, or it cannot be recorded).
    async fn record_seen(&self, claims: &envelope::EnvelopeClaims) -> Result<(), SeenError> {
        let seen = self.seen.clone();
        let claims = claims.clone();
        // File writes and an fsync: off the async workers.
        tokio::task::spawn_blocking(move || {
            let mut record = match seen.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            record.record(&claims, now_secs())
        })
        .await
        .unwrap_or_else(|e| Err(SeenError::Unrecordable(e.to_string())))
    }

    /// Whether `sid` ran before: it has a local log, or its output stream
    /// exists. `Err` when Redis cannot tell.
    async fn session_ran_before(&mut self, sid: &SessionId) -> Result<bool, String> {
        let log = session_log_path(&self.settings.log_root, &self.spec.id, sid);
        if std::fs::symlink_metadata(&log).is_ok() {
            return Ok(true);
        }
        let mut exists = redis::cmd("EXISTS");
        exists.arg(names::output_stream(&self.spec.id, sid));
        match tokio::time::timeout(
            STREAM_CHECK_TIMEOUT,
            exists.query_async::<i64>(&mut self.conn),
        )
        .await
        {
            Ok(Ok(n)) => Ok(n > 0),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    async fn start_session(&mut self, cmd: CommandPayload) {
        let sid = cmd.session_id.clone();
        // A session runs at most once: a second command naming it (a
        // replay that got past the envelope record, say after the record
        // file was deleted) is dropped, and its stream left alone.
        match self.session_ran_before(&sid).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!(session = %sid, "refused a command: that session already ran (it has a log or a stream); nothing runs");
                return;
            }
            // The stream check is the last of three guards: the envelope
            // record (which fails closed) already refuses every envelope
            // still valid, and the log check needs no Redis. Refusing here
            // would refuse every prompt that arrives while a rebuilt
            // connection is being swapped in, which this loop itself does.
            Err(e) => {
                tracing::warn!(session = %sid, error = %e, "cannot check the session's stream in Redis; relying on the envelope record and the local log")
            }
        }
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
            self.refuse(&sid, message).await;
            return;
        }

        let abort = CancellationToken::new();
        let give_up = CancellationToken::new();
        let (approvals, inbox) = approval::channels();
        let policy = self.settings.approval.policies.for_project(&self.spec.path);
        let session_approvals = SessionApprovals::new(policy, inbox);
        let ctx = SessionContext {
            conn: self.conn.clone(),
            agent_id: self.spec.id.clone(),
            agent_name: self.spec.name.clone(),
            path: self.spec.path.clone(),
            runner: self.spec.runner.clone(),
            settings: self.settings.clone(),
            command: cmd,
            conversation: self.spec.conversation.clone(),
        };
        let span = tracing::info_span!("session", session = %sid);
        let join = tokio::spawn(
            run_session(ctx, session_approvals, abort.clone(), give_up.clone()).instrument(span),
        );
        self.shared.set_running(Some(sid.clone()));
        self.session = Some(RunningSession {
            id: sid,
            abort,
            give_up,
            approvals,
            join,
        });
        self.heartbeat().await;
    }

    /// Tells the owner that session `sid` will not run: a notice and
    /// `done {rejected}` on its stream.
    async fn refuse(&self, sid: &SessionId, message: String) {
        tracing::info!(session = %sid, reason = %message, "command refused");
        let key = names::output_stream(&self.spec.id, sid);
        let mut out = OutputWriter::new(self.conn.clone(), key, CancellationToken::new());
        let written = tokio::time::timeout(out_give_up(), async {
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
                withheld_bytes: 0,
            })
            .await
        })
        .await;
        if !matches!(written, Ok(Ok(_))) {
            tracing::warn!(session = %sid, "could not tell the owner that the command was refused");
        }
    }

    /// Hands a tool-approval question to the running session without
    /// waiting for its answer; any other session id is denied at once.
    fn route_approval(&self, session: SessionId, ask: ApprovalAsk) {
        match &self.session {
            Some(s) if s.id == session => s.approvals.ask(ask),
            _ => {
                tracing::info!(session = %session, tool = %ask.tool, "approval request denied: that session is not running");
                let _ = ask.reply.send(Decision::deny(NOT_RUNNING));
            }
        }
    }

    /// Passes the phone's answer (from a verified envelope) to the session
    /// that asked; anything else is logged and ignored.
    fn route_answer(&self, a: remoteagent_proto::events::ApprovalPayload) {
        let span =
            tracing::info_span!("approval", session = %a.session_id, request = %a.request_id);
        let _entered = span.enter();
        if !remoteagent_proto::events::valid_request_id(&a.request_id) {
            tracing::warn!("approval answer ignored: malformed request id");
            return;
        }
        match &self.session {
            Some(s) if s.id == a.session_id => {
                tracing::info!(allow = a.allow, "approval answer received");
                let answer = ApprovalAnswer {
                    request_id: a.request_id,
                    allow: a.allow,
                };
                if !s.approvals.answer(answer) {
                    tracing::warn!("approval answer dropped: the session is not taking answers");
                }
            }
            _ => tracing::info!("approval answer ignored: that session is not running"),
        }
    }

    /// Aborts the running session and waits for its `done`.
    async fn abort_and_wait(&mut self) -> Option<SessionId> {
        let session = self.session.take()?;
        session.abort.cancel();
        let wait = self.settings.abort_grace + SHUTDOWN_SLACK;
        let mut join = session.join;
        let outcome = match tokio::time::timeout(wait, &mut join).await {
            Ok(joined) => joined.ok(),
            Err(_) => {
                // Redis is unreachable: stop retrying the last writes.
                session.give_up.cancel();
                join.await.ok()
            }
        };
        self.shared.set_running(None);
        // An aborted conversation can still be continued.
        self.remember_conversation(outcome);
        self.heartbeat().await;
        Some(session.id)
    }

    /// Keeps the conversation id a finished session reported, for the next
    /// command that continues, and asks the supervisor to store it. A session
    /// that reported none leaves the previous id in place.
    fn remember_conversation(&mut self, outcome: Option<SessionOutcome>) {
        let Some(id) = outcome.and_then(|o| o.conversation) else {
            return;
        };
        if self.spec.conversation.as_deref() == Some(id.as_str()) {
            return;
        }
        tracing::info!(conversation = %id, "the runner started a new conversation");
        self.spec.conversation = Some(id.clone());
        self.shared.set_conversation(id.clone());
        // Never wait on the supervisor here: it may be waiting for this very
        // task to stop. A notice that does not fit is not lost for good:
        // shutdown hands the id over too.
        let notice = AgentNotice::Conversation {
            agent: self.spec.id.clone(),
            conversation: id,
        };
        if let Err(e) = self.notices.try_send(notice) {
            tracing::warn!(error = %e, "could not pass the conversation id to the supervisor");
        }
    }

    /// Refreshes `presence:{id}`; true when Redis answered. Failures are
    /// counted in `self.link`.
    async fn heartbeat(&mut self) -> bool {
        let value = serde_json::json!({
            "hostname": self.hostname,
            "version": env!("CARGO_PKG_VERSION"),
            "busy": self.session.is_some(),
        })
        .to_string();
        let mut set = redis::cmd("SET");
        set.arg(names::presence_key(&self.spec.id))
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
                // is back too.
                self.shared.online.send_replace(true);
                self.link = Link::default();
                true
            }
            Err(e) => {
                self.link.failures += 1;
                self.link.auth_refused = is_auth_error(&e);
                tracing::debug!(error = %e, failures = self.link.failures, "presence heartbeat failed");
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
        let mut conn = self.conn.get();
        let _ = tokio::time::timeout(Duration::from_secs(3), conn.unsubscribe(&self.channel)).await;
        self.shared.online.send_replace(false);
        tracing::info!("agent stopped");
    }
}

fn out_give_up() -> Duration {
    Duration::from_secs(10)
}

/// What it takes to log in to Redis as the agent (owned, so that a
/// reconnection can run in a task of its own).
struct RedisLogin {
    url: String,
    username: String,
    /// The agent JWT. Never logged.
    password: String,
}

impl RedisLogin {
    fn of(spec: &AgentSpec) -> Self {
        RedisLogin {
            url: spec.redis_url.clone(),
            username: spec.redis_username.clone(),
            password: spec.jwt.clone(),
        }
    }
}

/// A new client, connection manager and subscription to `channel`.
async fn connect_and_subscribe(
    login: RedisLogin,
    channel: String,
    push_tx: mpsc::UnboundedSender<PushInfo>,
) -> redis::RedisResult<ConnectionManager> {
    let info = login.url.as_str().into_connection_info()?;
    let mut settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    if !login.username.is_empty() {
        settings = settings
            .set_username(&login.username)
            .set_password(&login.password);
    }
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    // Few quick retries inside the manager (a blip heals in well under a
    // second); longer outages are the agent task's job, with its own
    // backoff and a fresh manager when this one gives up for good.
    let config = ConnectionManagerConfig::new()
        .set_push_sender(push_tx)
        .set_automatic_resubscription()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    let mut conn = ConnectionManager::new_with_config(client, config).await?;
    conn.subscribe(&channel).await?;
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

/// The outcome of `task` once it ends; never without one.
async fn join_opt<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(t) => t.await,
        None => std::future::pending().await,
    }
}

/// Resolves when the running session's task ends (with its outcome, unless
/// it panicked); never without one.
async fn session_done(session: &mut Option<RunningSession>) -> Option<SessionOutcome> {
    match session {
        Some(s) => (&mut s.join).await.ok(),
        None => std::future::pending().await,
    }
}
