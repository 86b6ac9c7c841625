//! The per-agent task: one per paired project folder, an actor.
//!
//! It waits on three things in one `select!`: its Redis [`link`] (command
//! messages, heartbeats, reconnection), the supervisor's control messages
//! through [`AgentHandle`], and the session it runs. Every message on the
//! command channel must be an envelope signed by the cloud key pinned at
//! pairing, addressed to this agent, unexpired and never seen before;
//! anything else is dropped with a warning ([`admission`] holds the guards).
//! One session runs at a time ([`session`]); agents never wait on each
//! other. An agent whose project says `worktrees = true` also runs the
//! prompts that arrive while busy, each in a git worktree of its own
//! ([`parallel`], `crate::worktrees`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use remoteagent_proto::envelope;
use remoteagent_proto::events::{CommandEvent, CommandPayload, StoppedBy};
use remoteagent_proto::{AgentId, SessionId};
use remoteagent_rediskit::Conn;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use session::StopSignal;

use crate::approval::session::SessionApprovals;
use crate::approval::{self, ApprovalAnswer, ApprovalAsk, ApprovalSenders, Decision};
use crate::seen_envelopes::{AgentRecord, SeenError};
use link::{Link, LinkEvent, LinkSetup};
use session::{SessionContext, SessionOutcome, run_session};

mod admission;
mod link;
mod orphans;
mod parallel;
mod session;
mod spec;

pub use spec::{AgentNotice, AgentSettings, AgentSpec};

/// Why an approval question for a session we do not run is denied.
const NOT_RUNNING: &str = "no such session running";
/// How long shutdown waits for a session's `done` beyond the abort grace.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(10);
/// How long shutdown waits for `/get`s to write their last words.
const GETS_GRACE: Duration = Duration::from_secs(5);

/// State read by the handle without a round trip to the task.
struct Shared {
    /// Presence written and the connection working; a watch so the
    /// pairing flow can wait for the first `true` without polling. Only
    /// the link writes it.
    online: watch::Receiver<bool>,
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
    /// Stop the task; a running session is stopped as `by` says.
    Shutdown(StoppedBy, oneshot::Sender<()>),
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
        // Nobody sends on this channel: the settings stay as given.
        Self::spawn_live(spec, watch::channel(settings).1, notices)
    }

    /// [`Self::spawn`] with settings that can change (a config reload):
    /// each session starts with the newest.
    pub fn spawn_live(
        spec: AgentSpec,
        live: watch::Receiver<Arc<AgentSettings>>,
        notices: mpsc::Sender<AgentNotice>,
    ) -> AgentHandle {
        let id = spec.id.clone();
        let (online_tx, online_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            online: online_rx,
            running: Mutex::new(None),
            conversation: Mutex::new(None),
        });
        let (control, control_rx) = mpsc::channel(8);
        let span = tracing::info_span!("agent", agent = %spec.id, name = %spec.name);
        let task = tokio::spawn(
            run_agent(spec, live, notices, shared.clone(), online_tx, control_rx).instrument(span),
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
        // Like a new subscription: the current value counts as seen.
        let mut online = self.shared.online.clone();
        online.mark_unchanged();
        online
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
        cwd: Option<String>,
    ) -> impl std::future::Future<Output = Decision> + Send + 'static {
        let control = self.control.clone();
        async move {
            let (reply, decision) = oneshot::channel();
            let ask = ApprovalAsk {
                tool,
                input,
                cwd,
                reply,
            };
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
        self.shutdown_by(StoppedBy::Shutdown).await
    }

    /// [`Self::shutdown`], the running session's `done` saying it was
    /// stopped `by` (the computer when unpaired there, …).
    pub async fn shutdown_by(self, by: StoppedBy) -> Option<String> {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Shutdown(by, tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
        self.shared.conversation.lock().ok().and_then(|c| c.clone())
    }
}

/// A session in progress.
struct RunningSession {
    id: SessionId,
    /// Aborts the runner (SIGTERM, then SIGKILL after the grace), noting
    /// who asked.
    abort: StopSignal,
    /// Cancelled to stop retrying Redis writes (shutdown with Redis gone).
    give_up: CancellationToken,
    /// Tool-approval questions and the phone's answers, to the session.
    approvals: ApprovalSenders,
    join: JoinHandle<SessionOutcome>,
    /// A run in a worktree holds it (running) until it ends.
    worktree: Option<crate::worktrees::Lease>,
}

struct Agent {
    spec: AgentSpec,
    settings: Arc<AgentSettings>,
    /// Where newer settings come from; taken when a session starts.
    live: watch::Receiver<Arc<AgentSettings>>,
    shared: Arc<Shared>,
    notices: mpsc::Sender<AgentNotice>,
    link: Link,
    /// The envelopes this agent already acted on (on disk, shared with
    /// any other task of this agent).
    seen: Arc<Mutex<AgentRecord>>,
    session: Option<RunningSession>,
    /// Runs in worktrees beside `session` (`worktrees = true` only).
    parallel: Vec<RunningSession>,
    /// Cancelled when the agent stops: background work (the orphan sweep)
    /// stops waiting to retry.
    stopping: CancellationToken,
    /// `/get`s being answered (`crate::files::get`), beside any session.
    gets: JoinSet<()>,
}

enum Flow {
    Continue,
    Stop,
}

async fn run_agent(
    spec: AgentSpec,
    live: watch::Receiver<Arc<AgentSettings>>,
    notices: mpsc::Sender<AgentNotice>,
    shared: Arc<Shared>,
    online: watch::Sender<bool>,
    mut control: mpsc::Receiver<Control>,
) {
    // Before any command is taken: a session of this task is never an
    // orphan. What an earlier daemon's runners left running ends first,
    // without waiting for Redis: it is local.
    let settings = live.borrow().clone();
    let orphaned = orphans::find_now(&spec.id, &settings.log_root);
    orphans::end_leftover_runners(
        &spec.id,
        &settings.log_root,
        &orphaned,
        settings.abort_grace,
    )
    .await;

    let setup = LinkSetup::new(&spec, online, crate::util::names::clean_hostname());
    let Some(conn) = connect(&setup, &mut control).await else {
        return;
    };
    // Not online yet: that waits for the first heartbeat (see `link`).
    tracing::info!("subscribed to its command channel");

    let mut agent = Agent {
        // Loaded now, before the first envelope can be taken.
        seen: settings.seen.for_agent(&spec.id),
        spec,
        settings,
        live,
        shared,
        notices,
        link: setup.into_link(conn),
        session: None,
        parallel: Vec::new(),
        stopping: CancellationToken::new(),
        gets: JoinSet::new(),
    };
    // Their streams get their `done` now that Redis can be reached.
    orphans::sweep(
        orphaned,
        &agent.spec.id,
        &agent.settings.log_root,
        agent.link.conn(),
        agent.stopping.clone(),
    );
    let worktrees = agent.settings.worktrees.enabled_for(&agent.spec.path);
    agent.link.set_worktrees(worktrees);
    agent.heartbeat().await;
    agent.run(control).await;
}

/// Connects and subscribes, retrying with backoff while staying responsive
/// to the supervisor; `None` when told to stop first.
async fn connect(setup: &LinkSetup, control: &mut mpsc::Receiver<Control>) -> Option<Conn> {
    let mut backoff = link::CONNECT_BACKOFF;
    loop {
        let e = match setup.connect().await {
            Ok(conn) => return Some(conn),
            Err(e) => e,
        };
        let Some(delay) = backoff.next_delay() else {
            // Not reached: the connect backoff has no attempt limit.
            tracing::error!(error = %e, "cannot reach Redis; giving up");
            return None;
        };
        tracing::warn!(error = %e, retry_in = ?delay, "cannot reach Redis; retrying");
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                msg = control.recv() => match msg {
                    Some(Control::Abort(tx)) => { let _ = tx.send(None); }
                    Some(Control::Shutdown(_, tx)) => { let _ = tx.send(()); return None; }
                    Some(Control::Approval(_, ask)) => {
                        let _ = ask.reply.send(Decision::deny(NOT_RUNNING));
                    }
                    None => return None,
                }
            }
        }
    }
}

impl Agent {
    /// The actor's loop, until the supervisor or the cloud stops it.
    async fn run(&mut self, mut control: mpsc::Receiver<Control>) {
        // Who a session still running when the loop ends is stopped by.
        let mut ended_by = StoppedBy::Shutdown;
        loop {
            tokio::select! {
                wake = self.link.wake() => {
                    match self.link.handle(wake, self.busy()).await {
                        Some(LinkEvent::Message(token)) => {
                            if let Flow::Stop = self.on_envelope(&token).await {
                                // Unpaired from the cloud: the phone's doing.
                                ended_by = StoppedBy::Phone;
                                break;
                            }
                        }
                        Some(LinkEvent::Closed) => break,
                        None => {}
                    }
                }
                msg = control.recv() => match msg {
                    Some(Control::Abort(tx)) => {
                        let id = self.abort_and_wait(StoppedBy::Computer).await;
                        let _ = tx.send(id);
                    }
                    Some(Control::Shutdown(by, tx)) => {
                        self.stop(by).await;
                        let _ = tx.send(());
                        return;
                    }
                    Some(Control::Approval(session, ask)) => self.route_approval(session, ask),
                    None => break,
                },
                outcome = session_done(&mut self.session) => {
                    self.session = None;
                    self.shared.set_running(None);
                    self.remember_conversation(outcome);
                    self.heartbeat().await;
                }
                ended = parallel::done(&mut self.parallel) => {
                    // A worktree run's conversation is its own: the agent's
                    // stays the one its project-folder runs continue.
                    drop(self.parallel.swap_remove(ended));
                    self.heartbeat().await;
                }
            }
        }
        self.stop(ended_by).await;
    }

    async fn on_envelope(&mut self, token: &str) -> Flow {
        let claims = match envelope::verify(&self.spec.cloud_public_key, &self.spec.id, token) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(reason = %e, "dropped a command envelope");
                return Flow::Continue;
            }
        };
        if let Err(e) = admission::record_seen(&self.seen, &claims).await {
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
                && matches!(self.ran_before(&cmd.session_id).await, Ok(false))
            {
                admission::refuse(
                    self.link.conn(),
                    &self.spec.id,
                    &cmd.session_id,
                    "the daemon cannot record the command as received (is its disk full?); nothing ran".into(),
                )
                .await;
            }
            return Flow::Continue;
        }
        match claims.command {
            CommandEvent::Command(cmd) => self.start_session(cmd).await,
            CommandEvent::Abort(abort) => match self.find(&abort.session_id) {
                Some(s) => {
                    tracing::info!(session = %s.id, "abort requested");
                    s.abort.stop(StoppedBy::Phone);
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
            CommandEvent::GetFile(get) => self.answer_get(get),
            CommandEvent::ListSessions(list) => self.answer_list_sessions(list),
            CommandEvent::ListRules(list) => self.answer_list_rules(list),
            CommandEvent::Checkpoint(c) => self.answer_checkpoint(c),
            CommandEvent::CleanWorktrees(clean) => self.answer_clean(clean),
            CommandEvent::Unknown => {
                tracing::info!("skipped a command of a kind this daemon does not know")
            }
        }
        Flow::Continue
    }

    /// Whether `sid` ran before (see [`admission::ran_before`]).
    async fn ran_before(&self, sid: &SessionId) -> Result<bool, String> {
        admission::ran_before(
            self.link.conn(),
            &self.settings.log_root,
            &self.spec.id,
            sid,
        )
        .await
    }

    async fn start_session(&mut self, cmd: CommandPayload) {
        // A reloaded config applies from the next session on; never under
        // a running one, whose abort grace the shutdown wait must match.
        if !self.busy() {
            self.settings = self.live.borrow().clone();
            let worktrees = self.settings.worktrees.enabled_for(&self.spec.path);
            self.link.set_worktrees(worktrees);
        }
        let sid = cmd.session_id.clone();
        // A session runs at most once: a second command naming it (a
        // replay that got past the envelope record, say after the record
        // file was deleted) is dropped, and its stream left alone.
        match self.ran_before(&sid).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!(session = %sid, "refused a command: that session already ran (it has a log or a stream); nothing runs");
                return;
            }
            // The stream check is the last of three guards: the envelope
            // record (which fails closed) already refuses every envelope
            // still valid, and the log check needs no Redis. Refusing here
            // would refuse every prompt that arrives while a rebuilt
            // connection is being swapped in, which the link itself does.
            Err(e) => {
                tracing::warn!(session = %sid, error = %e, "cannot check the session's stream in Redis; relying on the envelope record and the local log")
            }
        }
        // A worktree agent runs a prompt that comes while busy beside the
        // running one, in a worktree of its own; when none can be made, it
        // is refused as busy, with a notice saying why.
        let mut worktree = None;
        let mut no_worktree = None;
        if self.session.is_some()
            && self.settings.worktrees.enabled_for(&self.spec.path)
            && admission::prompt_refusal(&cmd.prompt, self.settings.max_prompt_bytes, "", false)
                .is_none()
        {
            match parallel::make_worktree(&self.spec, &self.settings.worktrees, &sid).await {
                Ok(made) => worktree = Some(made),
                Err(why) => no_worktree = Some(parallel::no_worktree_notice(&self.spec.name, &why)),
            }
        }
        let busy = self.session.is_some() && worktree.is_none();
        let refusal = admission::prompt_refusal(
            &cmd.prompt,
            self.settings.max_prompt_bytes,
            &self.spec.name,
            busy,
        )
        .or_else(|| crate::conversations::resume_refusal(&cmd));
        if let Some(message) = refusal {
            // Files sent with it are not kept: the owner must know to send
            // them again.
            let message = message + &crate::inbox::not_kept_note(&cmd.attachments);
            admission::refuse_noting(self.link.conn(), &self.spec.id, &sid, no_worktree, message)
                .await;
            return;
        }
        let mut cmd = cmd;
        if worktree.is_some() {
            parallel::fresh_conversation(&mut cmd);
        }

        let abort = StopSignal::default();
        let give_up = CancellationToken::new();
        let (approvals, inbox) = approval::channels();
        let policy = self.settings.approval.policies.for_project(&self.spec.path);
        // The phone's mode, clamped to this computer's policy.
        let chosen = approval::modes::choose(policy, &self.spec.runner, cmd.mode, &self.spec.name);
        let seat = approval::board::SessionSeat {
            agent_id: self.spec.id.clone(),
            agent_name: self.spec.name.clone(),
            session_id: sid.clone(),
            answers: approvals.answers(),
        };
        let rules = approval::rules::SessionRules {
            store: self.settings.approval.rules.clone(),
            agent: self.spec.id.clone(),
            conversation: approval::rules::SessionRules::conversation_key(
                &crate::conversations::resume_for(&cmd, self.spec.conversation.as_deref()),
                &sid,
            ),
            project: self.spec.path.clone(),
        };
        let session_approvals = SessionApprovals::new(chosen.policy, inbox)
            .on_board(self.settings.approval.board.clone(), seat)
            .with_rules(rules);
        let ctx = SessionContext {
            conn: self.link.conn(),
            agent_id: self.spec.id.clone(),
            agent_name: self.spec.name.clone(),
            path: worktree
                .as_ref()
                .map_or_else(|| self.spec.path.clone(), |w| w.dir.clone()),
            runner: self.spec.runner.clone(),
            settings: self.settings.clone(),
            command: cmd,
            conversation: match worktree {
                Some(_) => None,
                None => self.spec.conversation.clone(),
            },
            worktree_branch: worktree.as_ref().map(|w| w.branch.clone()),
            blobs: blob_store(&self.spec),
            hostname: crate::util::names::clean_hostname(),
            mode: chosen.mode,
            mode_notice: chosen.notice,
            asks: approvals.clone(),
        };
        let span = tracing::info_span!("session", session = %sid);
        let join = tokio::spawn(
            run_session(ctx, session_approvals, abort.clone(), give_up.clone()).instrument(span),
        );
        let lease = worktree.map(|w| self.settings.worktrees.running.lease(w.dir));
        let running = RunningSession {
            id: sid.clone(),
            abort,
            give_up,
            approvals,
            join,
            worktree: lease,
        };
        if running.worktree.is_some() {
            self.parallel.push(running);
        } else {
            self.shared.set_running(Some(sid));
            self.session = Some(running);
        }
        self.heartbeat().await;
    }

    /// Answers a `/get` in a task of its own: it only reads, so a running
    /// session neither waits for it nor holds it up. Past
    /// [`crate::files::get::MAX_AT_ONCE`] at once, the task only refuses.
    fn answer_get(&mut self, get: remoteagent_proto::files::GetFilePayload) {
        while self.gets.try_join_next().is_some() {}
        let job = crate::files::get::GetJob {
            conn: self.link.conn(),
            agent: self.spec.id.clone(),
            project: self.spec.path.clone(),
            blobs: blob_store(&self.spec),
            hostname: crate::util::names::clean_hostname(),
            stopping: self.stopping.clone(),
            busy: self.gets.len() >= crate::files::get::MAX_AT_ONCE,
        };
        let span = tracing::info_span!("get", session = %get.session_id);
        self.gets.spawn(job.run(get).instrument(span));
    }

    /// Answers `/sessions` in a task of its own, beside `/get`s (it only
    /// reads a small file), so a running session neither waits nor holds
    /// it up.
    /// Answers `/rules` (and its 🗑 Revoke) in a task of its own, as
    /// `/sessions` is.
    fn answer_list_rules(&mut self, list: remoteagent_proto::rules::ListRulesPayload) {
        while self.gets.try_join_next().is_some() {}
        let job = approval::rules::answer::RulesJob {
            conn: self.link.conn(),
            agent: self.spec.id.clone(),
            rules: self.settings.approval.rules.clone(),
        };
        let span = tracing::info_span!("rules", session = %list.session_id);
        self.gets.spawn(job.run(list).instrument(span));
    }

    fn answer_list_sessions(&mut self, list: remoteagent_proto::sessions::ListSessionsPayload) {
        while self.gets.try_join_next().is_some() {}
        let job = crate::conversations::answer::ListJob {
            conn: self.link.conn(),
            agent: self.spec.id.clone(),
            history: self.settings.conversations.clone(),
        };
        let span = tracing::info_span!("sessions", session = %list.session_id);
        self.gets.spawn(job.run(list).instrument(span));
    }

    /// Answers a diff card's button (`crate::checkpoint::answer`) in a
    /// task of its own beside `/get`s: a diff only reads, and an undo or
    /// commit touches only the files of a run that already ended.
    fn answer_checkpoint(&mut self, cmd: remoteagent_proto::checkpoints::CheckpointPayload) {
        while self.gets.try_join_next().is_some() {}
        let job = crate::checkpoint::answer::CheckpointJob {
            conn: self.link.conn(),
            ctx: self.checkpoint_context(),
            blobs: blob_store(&self.spec),
            stopping: self.stopping.clone(),
            busy: self.session.is_some(),
        };
        let span = tracing::info_span!("checkpoint", session = %cmd.session_id, run = %cmd.run);
        self.gets.spawn(job.run(cmd).instrument(span));
    }

    fn checkpoint_context(&self) -> crate::checkpoint::answer::ActContext {
        crate::checkpoint::answer::ActContext {
            agent: self.spec.id.clone(),
            agent_name: self.spec.name.clone(),
            project: self.spec.path.clone(),
            log_root: self.settings.log_root.clone(),
        }
    }

    /// `/clean`: removes the finished worktrees in a task of its own,
    /// beside any run (the running ones are left alone).
    fn answer_clean(&mut self, clean: remoteagent_proto::worktrees::CleanWorktreesPayload) {
        while self.gets.try_join_next().is_some() {}
        let job = crate::worktrees::answer::CleanJob {
            conn: self.link.conn(),
            agent: self.spec.id.clone(),
            name: self.spec.name.clone(),
            path: self.spec.path.clone(),
            settings: self.settings.worktrees.clone(),
        };
        let span = tracing::info_span!("clean", session = %clean.session_id);
        self.gets.spawn(job.run(clean).instrument(span));
    }

    /// The running session `id`: the one in the project folder or one in
    /// a worktree.
    fn find(&self, id: &SessionId) -> Option<&RunningSession> {
        self.session
            .iter()
            .chain(self.parallel.iter())
            .find(|s| &s.id == id)
    }

    /// A run is going (in the project folder or a worktree).
    fn busy(&self) -> bool {
        self.session.is_some() || !self.parallel.is_empty()
    }

    /// Hands a tool-approval question to the running session without
    /// waiting for its answer; any other session id is denied at once.
    fn route_approval(&self, session: SessionId, ask: ApprovalAsk) {
        match self.find(&session) {
            Some(s) => s.approvals.ask(ask),
            None => {
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
        match self.find(&a.session_id) {
            Some(s) => {
                tracing::info!(allow = a.allow, "approval answer received");
                let answer = ApprovalAnswer {
                    request_id: a.request_id,
                    allow: a.allow,
                    origin: approval::Origin::Phone,
                    reason: None,
                    answer: a.answer,
                    scope: a.scope,
                };
                if !s.approvals.answer(answer) {
                    tracing::warn!("approval answer dropped: the session is not taking answers");
                }
            }
            None => tracing::info!("approval answer ignored: that session is not running"),
        }
    }

    /// Aborts the running session and waits for its `done`, which says
    /// who stopped it.
    /// Without one in the project folder, the newest worktree run is the
    /// one stopped.
    async fn abort_and_wait(&mut self, by: StoppedBy) -> Option<SessionId> {
        let Some(session) = self.session.take() else {
            let run = self.parallel.pop()?;
            let id = run.id.clone();
            parallel::abort_all(vec![run], by, self.settings.abort_grace + SHUTDOWN_SLACK).await;
            self.heartbeat().await;
            return Some(id);
        };
        session.abort.stop(by);
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

    /// Refreshes presence, saying whether a session runs.
    async fn heartbeat(&mut self) -> bool {
        let busy = self.busy();
        self.link.heartbeat(busy).await
    }

    /// Shutdown: abort the session (publishing its `done`), remove presence.
    async fn stop(&mut self, by: StoppedBy) {
        self.stopping.cancel();
        let wait = self.settings.abort_grace + SHUTDOWN_SLACK;
        // Every run is told at once; the project folder's is waited for last.
        if let Some(s) = &self.session {
            s.abort.stop(by);
        }
        parallel::abort_all(std::mem::take(&mut self.parallel), by, wait).await;
        self.abort_and_wait(by).await;
        // Each `/get` says it was cut short, on the link still open.
        let gets = async { while self.gets.join_next().await.is_some() {} };
        if tokio::time::timeout(GETS_GRACE, gets).await.is_err() {
            tracing::warn!("a /get did not finish its answer before the agent stopped");
            self.gets.abort_all();
        }
        self.link.close().await;
        tracing::info!("agent stopped");
    }
}

/// Where the agent's files for the chat go (`/get`, the outbox).
fn blob_store(spec: &AgentSpec) -> crate::files::BlobStore {
    crate::files::BlobStore::new(
        spec.id.clone(),
        spec.redis_url.clone(),
        spec.redis_username.clone(),
        spec.jwt.clone(),
    )
}

/// Resolves when the running session's task ends (with its outcome, unless
/// it panicked); never without one.
async fn session_done(session: &mut Option<RunningSession>) -> Option<SessionOutcome> {
    match session {
        Some(s) => (&mut s.join).await.ok(),
        None => std::future::pending().await,
    }
}
