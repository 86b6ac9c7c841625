//! The output forwarder.
//!
//! Per session: a placeholder message (with a Stop button whose
//! `callback_data` is `stop:{sessionId}`), then edits as chunks arrive from
//! `output:{agentId}:{sessionId}`, ending with a status line.
//!
//! * [`page`]: how output, notices and statuses are laid out on pages.
//! * [`store`]: per-session progress and locks in Redis.
//! * [`session`]: the task that follows one session's stream.
//!
//! **Invariants.** Exactly one replica forwards a session at a time (the
//! Redis lock); a page's text is stored only together with the stream id up
//! to which it is complete, so a replica that resumes a session shows every
//! chunk exactly once. All Telegram traffic goes through one [`Outbox`].
//!
//! To end a session the daemon never answers (an agent that is offline), the
//! bot may XADD a `done` event to its stream itself; the forwarder then
//! finishes it like any other. The forwarder does the same for a session
//! whose daemon died in its middle: once the stream has been silent and the
//! agent's presence key missing for [`ForwarderOptions::orphan_after`], it
//! writes `done {error}` into the stream and reads it back like any other
//! (a restarted daemon ends such sessions too, whichever comes first).
//!
//! **Approvals.** An `approval_request` ends the current page and becomes a
//! message of its own with [✅ Approve | ⛔ Deny] (`approve:{session}:{request}`
//! / `deny:…`); output after it goes on a new page below. Its message id is
//! kept in the session's state, so that `approval_resolved` (on whichever
//! replica) edits it with the verdict, and the bot's button handler can find
//! it ([`approval_message`]).
//!
//! **The end.** The last page's final edit shows the status and drops the
//! Stop button; then the end is told again as a new message replying to
//! the page (or to the output file): the "ping", since Telegram does not
//! notify on edits. It is recorded in the session's state once sent, so a
//! replica that takes over never sends it twice (see `pager/ping.rs`).
//!
//! **Long output.** At most [`ForwarderOptions::max_pages`] pages are shown
//! live; past them the last page says so, and at `done` the whole stream is
//! read back and sent as `output-{session}.txt` (cut at Telegram's 50 MB
//! upload limit, which the caption then states). A jump in chunk `seq` (the
//! stream was trimmed before it was read) is shown as lost output, live and
//! in the file's caption, never skipped silently.

mod draft_chats;
mod entry;
pub mod keys;
mod liveness;
mod output_file;
mod own_conn;
mod page;
mod pager;
pub mod questions;
pub mod scoped;
mod session;
mod shown;
mod store;
mod topic;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use remoteagent_proto::events::DoneStatus;
use remoteagent_proto::{AgentId, SessionId};
use remoteagent_rediskit::{Conn, Options, Target, conn};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::telegram::{MAX_MESSAGE_CHARS, Outbox, OutboxConfig, Telegram};
use own_conn::OwnConn;
use session::Session;
use store::SavedState;

/// What the bot hands the forwarder when it starts a session.
#[derive(Debug, Clone)]
pub struct SessionStart {
    pub agent_id: AgentId,
    pub session_id: SessionId,
    pub chat_id: i64,
    pub agent_name: String,
    /// Where approval requests go: the owner's private chat. `None`: the
    /// session's own chat (a private chat already).
    pub approval_chat_id: Option<i64>,
    /// The forum topic of the agent in `chat_id` (`crate::topics`): every
    /// message of the session in that chat goes there.
    pub thread: Option<i64>,
}

/// Sent when a session's `done` has been delivered, so the bot can record it.
#[derive(Debug, Clone)]
pub struct SessionFinished {
    pub agent_id: AgentId,
    pub session_id: SessionId,
    pub chat_id: i64,
    pub status: DoneStatus,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("redis: {0}")]
    Redis(String),
    #[error(transparent)]
    Telegram(#[from] crate::telegram::TelegramError),
}

impl From<redis::RedisError> for ForwarderError {
    fn from(e: redis::RedisError) -> Self {
        ForwarderError::Redis(e.to_string())
    }
}

/// Pages of output shown live per session by default.
pub const DEFAULT_MAX_PAGES: usize = 8;

/// Telegram's upload limit for bots: 50 MB.
pub const MAX_DOCUMENT_BYTES: u64 = 50_000_000;

/// Seconds a silent session's agent may be offline before the forwarder
/// ends the session, by default.
/// With the presence key's 20 s lifetime and a look every 5 s, a daemon that
/// died is reported within about 70 s; one that only runs a long, quiet tool
/// call keeps its presence and is never ended.
pub const DEFAULT_ORPHAN_SECS: u64 = 45;

/// Tuning of the forwarder; the defaults suit production.
#[derive(Debug, Clone)]
pub struct ForwarderOptions {
    /// Lifetime of a session lock; its owner refreshes it every third of it,
    /// and a dead owner's sessions are taken over once it lapses.
    pub lock_ttl: Duration,
    /// How often the resumer looks for sessions nobody forwards.
    pub resume_interval: Duration,
    /// Longest wait of one `XREAD BLOCK`.
    pub block: Duration,
    /// Characters per page (Telegram's limit; smaller only in tests).
    pub page_chars: usize,
    /// Pages of output shown live per session; past them the whole output is
    /// attached as a file when the session ends (`FORWARDER_MAX_PAGES`).
    pub max_pages: usize,
    /// Largest output file sent (Telegram's upload limit for bots is 50 MB);
    /// a longer output is cut there, and the caption says so.
    pub max_document_bytes: u64,
    /// How long a session's stream may stay silent while its agent's
    /// presence key is missing before the forwarder ends the session itself
    /// (`FORWARDER_ORPHAN_SECS`): a daemon that died mid-session never
    /// writes its `done`.
    pub orphan_after: Duration,
    /// Whether a session's end is also sent as a new message replying to
    /// its output, so that the phone notifies (`FINAL_NOTIFY`); each user
    /// may still turn it off for themselves (`/notify off`).
    pub final_notify: bool,
    /// How the current page is shown while a session runs in a private
    /// chat (`STREAM_MODE`): edits, or drafts persisted by `sendMessage`.
    pub stream_mode: crate::config::StreamMode,
    /// Where each user's `/notify` choice is read; without a database every
    /// user gets the message (as long as `final_notify`). Also where a
    /// session whose topic was deleted records the topic opened anew
    /// (`crate::topics::recreate`); without it, such output goes to the
    /// chat itself.
    pub notify_db: Option<crate::db::Db>,
}

impl Default for ForwarderOptions {
    fn default() -> Self {
        ForwarderOptions {
            lock_ttl: Duration::from_secs(15),
            resume_interval: Duration::from_secs(2),
            block: Duration::from_secs(2),
            page_chars: MAX_MESSAGE_CHARS,
            max_pages: DEFAULT_MAX_PAGES,
            max_document_bytes: MAX_DOCUMENT_BYTES,
            orphan_after: Duration::from_secs(DEFAULT_ORPHAN_SECS),
            final_notify: true,
            notify_db: None,
            stream_mode: crate::config::StreamMode::Edit,
        }
    }
}

/// What the forwarder's tasks share.
pub(crate) struct Ctx {
    /// The Redis server or cluster; every connection is made from it.
    redis: Target,
    outbox: Outbox,
    finished: mpsc::UnboundedSender<SessionFinished>,
    /// The lock value: the replica id plus a per-instance nonce, so two
    /// forwarders started with the same replica id still tell their locks
    /// apart.
    token: String,
    options: ForwarderOptions,
    /// Stops every task of this forwarder.
    cancel: CancellationToken,
    /// Sessions this forwarder is following.
    running: Mutex<HashSet<String>>,
    /// Chats where Telegram refused a draft.
    draft_chats: draft_chats::DraftChats,
    /// One multiplexed connection shared by the starts of all sessions, so
    /// that starting one costs no connection set-up. Short commands only:
    /// it is never handed to a session's task, which reads with `XREAD
    /// BLOCK` on an [`OwnConn`] (a blocking read would hold up every other
    /// command on a shared connection, and with them every prompt's start).
    shared: tokio::sync::Mutex<Option<Conn>>,
}

impl Ctx {
    fn running(&self) -> MutexGuard<'_, HashSet<String>> {
        // The set stays consistent even if a holder panicked.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared connection, connected on first use.
    async fn shared_conn(&self) -> redis::RedisResult<Conn> {
        let mut shared = self.shared.lock().await;
        if let Some(conn) = shared.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.connect().await?;
        *shared = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the shared connection after an error on it, so that the next
    /// start connects again (a standalone server's multiplexed connection
    /// does not reconnect; a cluster connection does, and a new one costs
    /// only a little).
    /// True if it was forgotten.
    async fn drop_shared_conn(&self, e: &redis::RedisError) -> bool {
        let dead = e.is_io_error() || e.is_connection_dropped() || e.is_timeout();
        if dead {
            *self.shared.lock().await = None;
        }
        dead
    }

    /// A connection of its own (on a cluster: its own sockets to every
    /// node), see [`OwnConn`].
    async fn connect(&self) -> redis::RedisResult<Conn> {
        // The default response timeout (0.5 s) is shorter than an XREAD
        // BLOCK: allow the block plus a margin.
        let options = Options {
            connection_timeout: Some(Duration::from_secs(5)),
            response_timeout: Some(self.options.block + Duration::from_secs(10)),
            ..Options::default()
        };
        conn::dedicated(&self.redis, &options).await
    }

    /// A new connection for one task alone, the kind a blocking read needs.
    async fn connect_own(&self) -> redis::RedisResult<OwnConn> {
        Ok(OwnConn::new(self.connect().await?))
    }

    fn spawn(self: &Arc<Self>, state: SavedState, resumed: bool) {
        let span = tracing::info_span!(
            "forwarder",
            agent = %state.agent_id,
            session = %state.session_id,
            chat = state.chat_id
        );
        let session = Session::new(self.clone(), state);
        tokio::spawn(session.run(resumed).instrument(span));
    }
}

#[derive(Clone)]
pub struct Forwarder {
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("token", &self.ctx.token)
            .field("options", &self.ctx.options)
            .finish()
    }
}

impl Forwarder {
    /// `replica_id` names this process in the per-session Redis locks.
    pub fn new(
        redis: Target,
        telegram: Telegram,
        finished: mpsc::UnboundedSender<SessionFinished>,
        replica_id: String,
    ) -> Self {
        let outbox = Outbox::new(telegram, OutboxConfig::default());
        Self::with_options(
            redis,
            outbox,
            finished,
            replica_id,
            ForwarderOptions::default(),
        )
    }

    /// Like [`Forwarder::new`], sharing the bot's `outbox` (one per bot) and
    /// with explicit tuning.
    pub fn with_options(
        redis: Target,
        outbox: Outbox,
        finished: mpsc::UnboundedSender<SessionFinished>,
        replica_id: String,
        options: ForwarderOptions,
    ) -> Self {
        let token = format!("{replica_id}:{}", uuid::Uuid::new_v4().simple());
        Forwarder {
            ctx: Arc::new(Ctx {
                redis,
                outbox,
                finished,
                token,
                options,
                cancel: CancellationToken::new(),
                running: Mutex::new(HashSet::new()),
                draft_chats: draft_chats::DraftChats::default(),
                shared: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The outbox this forwarder sends through (share it with the bot).
    pub fn outbox(&self) -> &Outbox {
        &self.ctx.outbox
    }

    /// Starts forwarding a session: returns as soon as the session is
    /// registered (its stream will be read from the beginning, so nothing
    /// the runner writes can be missed). Call before the command is
    /// published. The session's task sends the placeholder, so the
    /// prompt's command is not held up by Telegram.
    pub async fn begin(&self, session: SessionStart) -> Result<(), ForwarderError> {
        let state = self.register(session).await?;
        tracing::info!(agent = %state.agent_id, session = %state.session_id, chat = state.chat_id, "forwarding a session");
        self.ctx.spawn(state, false);
        Ok(())
    }

    /// Whether a session in `chat` shows its page as drafts: with
    /// `STREAM_MODE=draft`, in a private chat (Telegram allows drafts
    /// there only; users have positive ids, groups negative ones) where no
    /// draft was refused yet.
    fn drafts_in(&self, chat: i64) -> bool {
        self.ctx.options.stream_mode == crate::config::StreamMode::Draft
            && chat > 0
            && !self.ctx.draft_chats.is_refused(chat)
    }

    /// Records a new session (its state and this replica's lock) in Redis;
    /// returns its state.
    async fn register(&self, session: SessionStart) -> Result<SavedState, ForwarderError> {
        let state = SavedState {
            agent_id: session.agent_id,
            session_id: session.session_id,
            chat_id: session.chat_id,
            agent_name: session.agent_name,
            message_id: 0,
            html: String::new(),
            chars: 0,
            last_id: "0-0".into(),
            skip: 0,
            more: store::Progress {
                approval_chat: session.approval_chat_id.unwrap_or(0),
                thread: session.thread.unwrap_or(0),
                drafts: self.drafts_in(session.chat_id),
                ..store::Progress::default()
            },
        };
        let sid = state.session_id.to_string();
        self.ctx.running().insert(sid.clone());
        let created = match self.create_record(&state).await {
            Ok(done) => done,
            Err(e) => {
                self.ctx.running().remove(&sid);
                return Err(e.into());
            }
        };
        if !created {
            self.ctx.running().remove(&sid);
            return Err(ForwarderError::Redis(format!(
                "session {sid} is already being forwarded"
            )));
        }
        Ok(state)
    }

    /// `store::create` on the shared connection. When that connection turns
    /// out dead (Redis restarted since the last start), the command was
    /// never sent: it is tried once more on a new connection, so that the
    /// first prompt after a Redis restart does not fail.
    async fn create_record(&self, state: &SavedState) -> redis::RedisResult<bool> {
        let (token, ttl) = (&self.ctx.token, self.ctx.options.lock_ttl);
        let mut conn = self.ctx.shared_conn().await?;
        match store::create(&mut conn, state, token, ttl).await {
            Ok(created) => Ok(created),
            Err(e) if self.ctx.drop_shared_conn(&e).await => {
                tracing::debug!(error = %e, "the shared Redis connection was dead; connecting again");
                let mut conn = self.ctx.shared_conn().await?;
                let created = store::create(&mut conn, state, token, ttl).await;
                if let Err(e) = &created {
                    self.ctx.drop_shared_conn(e).await;
                }
                created
            }
            Err(e) => Err(e),
        }
    }

    /// Starts the background loop that resumes sessions left unfinished by
    /// this or a dead replica (from the last delivered stream id). Ends when
    /// `shutdown` is cancelled; this forwarder's sessions then stop too and
    /// release their locks, so that another replica takes them over.
    pub fn spawn_resumer(&self, shutdown: CancellationToken) {
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let mut conn: Option<Conn> = None;
            let mut migrated = false;
            loop {
                if let Err(e) = resume_once(&ctx, &mut conn, &mut migrated).await {
                    tracing::warn!(error = %e, "looking for sessions to resume");
                    conn = None;
                }
                tokio::select! {
                    () = shutdown.cancelled() => {
                        ctx.cancel.cancel();
                        break;
                    }
                    () = ctx.cancel.cancelled() => break,
                    () = tokio::time::sleep(ctx.options.resume_interval) => {}
                }
            }
        });
    }

    /// Stops this forwarder: its sessions release their locks for another
    /// replica, and its resumer ends.
    pub fn shutdown(&self) {
        self.ctx.cancel.cancel();
    }
}

/// Whether `session` is still being forwarded: registered and not
/// finished (what the prompt queue counts as a run in progress).
pub async fn is_forwarding<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    session: &SessionId,
) -> redis::RedisResult<bool> {
    redis::cmd("SISMEMBER")
        .arg(keys::active_key_of(session))
        .arg(session.as_str())
        .query_async(conn)
        .await
}

/// An approval request's message, as the forwarder shows it (for the bot's
/// button handler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalView {
    pub chat_id: i64,
    pub message_id: i64,
    /// The request as shown, without a verdict.
    pub html: String,
    /// Set once the daemon's verdict arrived: the message with the verdict.
    pub resolved_html: Option<String>,
    /// A question or a plan: what its buttons need.
    pub ask: Option<questions::Asked>,
    /// The rule the request offered (scoped answers).
    pub rule: Option<String>,
}

impl ApprovalView {
    /// The message right after a button press, until the verdict arrives.
    pub fn pending_html(&self, allow: bool) -> String {
        page::approval_pending_html(&self.html, allow)
    }
}

/// The message of approval request `request_id` of a session being
/// forwarded; `None` if there is no such session or request, or the request
/// could not be shown.
pub async fn approval_message<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    session: &SessionId,
    request_id: &str,
) -> redis::RedisResult<Option<ApprovalView>> {
    let Some((chat_id, approvals)) = store::approvals(conn, session).await? else {
        return Ok(None);
    };
    Ok(approvals
        .into_iter()
        .find(|a| a.rid == request_id && a.msg != 0)
        .map(|a| ApprovalView {
            chat_id,
            message_id: a.msg,
            html: a.html,
            resolved_html: a.resolved,
            ask: a.ask,
            rule: a.rule,
        }))
}

/// Claims and resumes every active session nobody holds.
/// First, once, moves the sessions an older release left in the single
/// set of unfinished sessions into their shards (`store::migrate_legacy`).
async fn resume_once(
    ctx: &Arc<Ctx>,
    conn: &mut Option<Conn>,
    migrated: &mut bool,
) -> redis::RedisResult<()> {
    if conn.is_none() {
        *conn = Some(ctx.connect().await?);
    }
    let Some(c) = conn.as_mut() else {
        return Ok(());
    };
    if !*migrated {
        let moved = store::migrate_legacy(c).await?;
        if moved > 0 {
            tracing::info!(
                moved,
                "moved unfinished sessions of an older release into their shards"
            );
        }
        *migrated = true;
    }
    for sid in store::active(c).await? {
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        if ctx.running().contains(&sid) {
            continue;
        }
        let session = match SessionId::parse(sid.as_str()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(session = %sid, error = %e, "invalid session id in the active set");
                continue;
            }
        };
        let Some(map) = store::claim(c, &session, &ctx.token, ctx.options.lock_ttl).await? else {
            continue;
        };
        match SavedState::from_map(&map) {
            Ok(state) => {
                ctx.running().insert(sid.clone());
                ctx.spawn(state, true);
            }
            Err(e) => {
                tracing::error!(session = %sid, error = %e, "dropping unreadable forwarder state");
                store::finish(c, &session, &ctx.token).await?;
            }
        }
    }
    Ok(())
}
