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
//! finishes it like any other.

mod page;
mod session;
mod store;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use remoteagent_proto::events::DoneStatus;
use remoteagent_proto::{AgentId, SessionId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::telegram::{MAX_MESSAGE_CHARS, Outbox, OutboxConfig, Telegram};
use session::Session;
use store::SavedState;

/// What the bot hands the forwarder when it starts a session.
#[derive(Debug, Clone)]
pub struct SessionStart {
    pub agent_id: AgentId,
    pub session_id: SessionId,
    pub chat_id: i64,
    pub agent_name: String,
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
}

impl Default for ForwarderOptions {
    fn default() -> Self {
        ForwarderOptions {
            lock_ttl: Duration::from_secs(15),
            resume_interval: Duration::from_secs(2),
            block: Duration::from_secs(2),
            page_chars: MAX_MESSAGE_CHARS,
        }
    }
}

/// What the forwarder's tasks share.
pub(crate) struct Ctx {
    redis: redis::Client,
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
}

impl Ctx {
    fn running(&self) -> MutexGuard<'_, HashSet<String>> {
        // The set stays consistent even if a holder panicked.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        // The default response timeout (0.5 s) is shorter than an XREAD
        // BLOCK: allow the block plus a margin.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(self.options.block + Duration::from_secs(10)));
        self.redis
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    fn spawn(
        self: &Arc<Self>,
        state: SavedState,
        conn: Option<MultiplexedConnection>,
        resumed: bool,
    ) {
        let span = tracing::info_span!(
            "forwarder",
            agent = %state.agent_id,
            session = %state.session_id,
            chat = state.chat_id
        );
        let session = Session::new(self.clone(), state, conn);
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
        redis: redis::Client,
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
        redis: redis::Client,
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
            }),
        }
    }

    /// The outbox this forwarder sends through (share it with the bot).
    pub fn outbox(&self) -> &Outbox {
        &self.ctx.outbox
    }

    /// Sends the placeholder and starts forwarding the session's stream (read
    /// from its beginning). Call before the command is published. Returns the
    /// placeholder's message id.
    pub async fn start(&self, session: SessionStart) -> Result<i64, ForwarderError> {
        let mut conn = self.ctx.connect().await?;
        let mut state = SavedState {
            agent_id: session.agent_id,
            session_id: session.session_id,
            chat_id: session.chat_id,
            agent_name: session.agent_name,
            message_id: 0,
            html: String::new(),
            chars: 0,
            last_id: "0-0".into(),
            skip: 0,
        };
        let sid = state.session_id.to_string();
        self.ctx.running().insert(sid.clone());
        let created = match store::create(
            &mut conn,
            &state,
            &self.ctx.token,
            self.ctx.options.lock_ttl,
        )
        .await
        {
            Ok(created) => created,
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
        let placeholder = page::placeholder(&state.agent_name);
        let keyboard = page::stop_keyboard(&state.session_id);
        let message = match self
            .ctx
            .outbox
            .send(state.chat_id, placeholder, Some(keyboard))
            .await
        {
            Ok(id) => id,
            Err(e) => {
                if let Err(re) = store::finish(&mut conn, &state.session_id, &self.ctx.token).await
                {
                    tracing::warn!(session = %sid, error = %re, "clearing a session that could not start");
                }
                self.ctx.running().remove(&sid);
                return Err(e.into());
            }
        };
        state.message_id = message;
        if let Err(e) = store::save(
            &mut conn,
            &state.session_id,
            Some(&state),
            &self.ctx.token,
            self.ctx.options.lock_ttl,
        )
        .await
        {
            // The task saves again after its first batch.
            tracing::warn!(session = %sid, error = %e, "saving the placeholder id");
        }
        tracing::info!(agent = %state.agent_id, session = %sid, chat = state.chat_id, message, "forwarding a session");
        self.ctx.spawn(state, Some(conn), false);
        Ok(message)
    }

    /// Starts the background loop that resumes sessions left unfinished by
    /// this or a dead replica (from the last delivered stream id). Ends when
    /// `shutdown` is cancelled; this forwarder's sessions then stop too and
    /// release their locks, so that another replica takes them over.
    pub fn spawn_resumer(&self, shutdown: CancellationToken) {
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let mut conn: Option<MultiplexedConnection> = None;
            loop {
                if let Err(e) = resume_once(&ctx, &mut conn).await {
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

/// Claims and resumes every active session nobody holds.
async fn resume_once(
    ctx: &Arc<Ctx>,
    conn: &mut Option<MultiplexedConnection>,
) -> redis::RedisResult<()> {
    if conn.is_none() {
        *conn = Some(ctx.connect().await?);
    }
    let Some(c) = conn.as_mut() else {
        return Ok(());
    };
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
                ctx.spawn(state, None, true);
            }
            Err(e) => {
                tracing::error!(session = %sid, error = %e, "dropping unreadable forwarder state");
                store::finish(c, &session, &ctx.token).await?;
            }
        }
    }
    Ok(())
}
