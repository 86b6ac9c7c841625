//! One session's forwarding task, the I/O loop around the [`Pager`]: reads
//! the output stream from the last delivered entry, feeds it to the pager,
//! and carries the pager's operations to the outbox and Redis.

use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::events::DonePayload;
use remoteagent_proto::names;
use remoteagent_rediskit::Conn;
use tokio::time::Instant;

use super::entry::parse_entry;
use super::liveness::Liveness;
use super::output_file;
use super::own_conn::OwnConn;
use super::pager::{FetchedFile, Io, OutputFile, Pager, Stop};
use super::store::{self, SavedState};
use super::{Ctx, SessionFinished};
use crate::blob_fetch::{self, FetchError};
use crate::telegram::outbox::Delivery;
use crate::telegram::{Document, DocumentSource, InlineKeyboard, TelegramError};

/// Entries read at once. A batch ends with one (coalesced) edit. Chunks are
/// up to 64 KiB, so a batch stays within a few MiB of memory even in a flood.
const BATCH: usize = 48;
/// How long a stopping task waits for its last edit before giving up the
/// lock; if the edit is still queued after that, the lock is left to expire
/// so that the next owner cannot be overtaken by this stale edit.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Attempts at clearing a finished session from the shared state, a second
/// apart.
const FINISH_ATTEMPTS: u32 = 5;
const FINISH_PAUSE: Duration = Duration::from_secs(1);

/// The pager's window on the world: the outbox, and the session's state in
/// Redis.
pub(super) struct LiveIo {
    ctx: Arc<Ctx>,
    agent: remoteagent_proto::AgentId,
    session: remoteagent_proto::SessionId,
    stream: String,
    /// The session's own connection: its `XREAD BLOCK` and, between reads,
    /// its saves and presence checks (never shared with another task).
    conn: Option<OwnConn>,
    /// The last live edit queued, to learn whether it failed.
    last_delivery: Option<Delivery>,
    last_save: Instant,
    /// The state last stored whole, to store again should Redis lose it.
    last_state: Option<SavedState>,
    /// The session's chat and forum topic there (`crate::topics`); the
    /// topic may be opened anew mid-session when the user deleted it.
    topic: super::topic::TopicTarget,
}

impl LiveIo {
    async fn conn(&mut self) -> redis::RedisResult<&mut OwnConn> {
        if self.conn.is_none() {
            self.conn = Some(self.ctx.connect_own().await?);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no Redis connection",
            ))),
        }
    }
}

impl Io for LiveIo {
    async fn send(
        &mut self,
        chat: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Result<i64, TelegramError> {
        let to = self.topic.to(chat);
        let result = self
            .ctx
            .outbox
            .send_to(to, html.clone(), keyboard.clone())
            .await;
        match self.topic.repair_if_gone(&self.ctx, to, &result).await {
            Some(to) => self.ctx.outbox.send_to(to, html, keyboard).await,
            None => result,
        }
    }

    async fn send_reply(
        &mut self,
        chat: i64,
        html: String,
        reply_to: i64,
    ) -> Result<i64, TelegramError> {
        let to = self.topic.to(chat);
        let result = self
            .ctx
            .outbox
            .send_reply_to(to, html.clone(), reply_to)
            .await;
        match self.topic.repair_if_gone(&self.ctx, to, &result).await {
            // The replied-to message went with the topic.
            Some(to) => self.ctx.outbox.send_to(to, html, None).await,
            None => result,
        }
    }

    async fn wants_ping(&mut self, user: i64) -> bool {
        if !self.ctx.options.final_notify {
            return false;
        }
        let Some(db) = &self.ctx.options.notify_db else {
            return true;
        };
        match crate::db::notify::wants_final(db, user).await {
            Ok(on) => on,
            Err(e) => {
                // Better one message too many than a run that ends unseen.
                tracing::warn!(session = %self.session, user, error = %e, "reading the user's /notify choice; sending the message");
                true
            }
        }
    }

    async fn edit(
        &mut self,
        chat: i64,
        message: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Result<(), TelegramError> {
        // Waiting for this edit covers the queued one of the same message.
        self.last_delivery = None;
        self.ctx
            .outbox
            .edit(chat, message, html, keyboard)
            .wait()
            .await
    }

    async fn draft(&mut self, chat: i64, draft_id: i64, html: String) -> Result<(), TelegramError> {
        let to = self.topic.to(chat);
        let result = self.ctx.outbox.send_draft(to, draft_id, html).await;
        if let Err(TelegramError::Api { code: 400, .. }) = &result {
            // The chat's next sessions start with edits.
            self.ctx.draft_chats.refused(chat);
        }
        result
    }

    async fn delete(&mut self, chat: i64, message: i64) -> Result<(), TelegramError> {
        self.ctx.outbox.delete(chat, message).wait().await
    }

    fn edit_soon(&mut self, chat: i64, message: i64, html: String, keyboard: InlineKeyboard) {
        self.last_delivery = Some(self.ctx.outbox.edit(chat, message, html, Some(keyboard)));
    }

    fn failed_edit(&mut self) -> Option<TelegramError> {
        let delivery = self.last_delivery.as_mut()?;
        match delivery.try_result() {
            None => None,
            Some(result) => {
                self.last_delivery = None;
                result.err()
            }
        }
    }

    async fn send_document(&mut self, chat: i64, document: Document) -> Result<i64, TelegramError> {
        let to = self.topic.to(chat);
        let result = self.ctx.outbox.send_document_to(to, document.clone()).await;
        match self.topic.repair_if_gone(&self.ctx, to, &result).await {
            Some(to) => self.ctx.outbox.send_document_to(to, document).await,
            None => result,
        }
    }

    async fn output_file(
        &mut self,
        done: &DonePayload,
        entry_id: &str,
    ) -> Result<OutputFile, String> {
        // Reading back and uploading up to 50 MB takes a while: the lock is
        // kept meanwhile, so that no other replica sends the file again.
        let _lock = keep_lock(self.ctx.clone(), self.session.clone());
        let cap = self.ctx.options.max_document_bytes;
        let stream = self.stream.clone();
        let ctx = self.ctx.clone();
        output_file::build(&ctx, &mut self.conn, &stream, done, entry_id, cap).await
    }

    async fn fetch_file(
        &mut self,
        file: &remoteagent_proto::files::Attachment,
    ) -> Result<FetchedFile, FetchError> {
        // Fetching and uploading up to 50 MB takes a while: the lock is
        // kept until the file was sent, so that no other replica takes the
        // session over meanwhile.
        let lock = keep_lock(self.ctx.clone(), self.session.clone());
        let agent = self.agent.clone();
        let conn = self
            .conn()
            .await
            .map_err(|e| FetchError::Redis(e.to_string()))?;
        match blob_fetch::fetch(conn, &agent, file).await {
            Ok(fetched) => Ok(FetchedFile {
                source: DocumentSource::File(fetched.path.to_path_buf()),
                _guards: vec![Box::new(fetched.path), Box::new(lock)],
            }),
            Err(e) => {
                if e.is_transient() {
                    self.conn = None;
                }
                Err(e)
            }
        }
    }

    async fn drop_blob(&mut self, key: &str) {
        // Never a key of another agent, whatever the event said.
        if !names::is_blob_key_of(&self.agent, key) {
            return;
        }
        match self.conn().await {
            Ok(conn) => blob_fetch::delete(conn, key).await,
            Err(e) => {
                tracing::warn!(key, error = %e, "deleting a file's blob; it expires on its own");
                self.conn = None;
            }
        }
    }

    async fn save(&mut self, state: Option<&SavedState>) -> Result<(), Stop> {
        let token = self.ctx.token.clone();
        let ttl = self.ctx.options.lock_ttl;
        let session = self.session.clone();
        if let Some(state) = state {
            let mut state = state.clone();
            // The topic may have been opened anew since the pager's copy.
            state.more.thread = self.topic.thread();
            self.last_state = Some(state);
        }
        let mut whole = state.is_some();
        loop {
            let state = if whole { self.last_state.clone() } else { None };
            let result = match self.conn().await {
                Ok(conn) => store::save(conn, &session, state.as_ref(), &token, ttl).await,
                Err(e) => Err(e),
            };
            return match result {
                Ok(store::Saved::Yes) => {
                    self.last_save = Instant::now();
                    Ok(())
                }
                Ok(store::Saved::Lost) => Err(Stop::Lost),
                Ok(store::Saved::Missing) if !whole && self.last_state.is_some() => {
                    // Redis lost the session's state (a restart without
                    // persistence): this replica still owns it.
                    tracing::warn!(session = %session, "the forwarder's state vanished from Redis; storing it again");
                    whole = true;
                    continue;
                }
                Ok(store::Saved::Missing) => Err(Stop::Lost),
                Err(e) => {
                    // Tolerated: the next save catches up.
                    tracing::warn!(session = %session, error = %e, "saving forwarder progress");
                    self.conn = None;
                    Ok(())
                }
            };
        }
    }

    async fn pause(&mut self, d: Duration) -> Result<(), Stop> {
        tokio::select! {
            () = self.ctx.cancel.cancelled() => Err(Stop::Cancelled),
            () = tokio::time::sleep(d) => Ok(()),
        }
    }
}

/// Refreshes the session's lock while a long step holds its task. Stops
/// when the returned guard is dropped.
fn keep_lock(ctx: Arc<Ctx>, session: remoteagent_proto::SessionId) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let ttl = ctx.options.lock_ttl;
        let mut conn: Option<Conn> = None;
        loop {
            tokio::time::sleep(ttl / 3).await;
            if conn.is_none() {
                conn = ctx.connect().await.ok();
            }
            let Some(c) = conn.as_mut() else {
                continue;
            };
            match store::save(c, &session, None, &ctx.token, ttl).await {
                Ok(store::Saved::Lost) => {
                    tracing::warn!(session = %session, "lost the session lock while sending the output file");
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(session = %session, error = %e, "refreshing the session lock");
                    conn = None;
                }
            }
        }
    }))
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Removes the session from the replica's running set however the task ends.
struct RunningGuard {
    ctx: Arc<Ctx>,
    session: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.ctx.running().remove(&self.session);
    }
}

pub(super) struct Session {
    ctx: Arc<Ctx>,
    pager: Pager<LiveIo>,
    stream: String,
    liveness: Liveness,
}

impl Session {
    /// The session's task connects on its first Redis command, a connection
    /// of its own (see [`OwnConn`]).
    pub(super) fn new(ctx: Arc<Ctx>, saved: SavedState) -> Self {
        let stream = names::output_stream(&saved.agent_id, &saved.session_id);
        let io = LiveIo {
            ctx: ctx.clone(),
            agent: saved.agent_id.clone(),
            session: saved.session_id.clone(),
            stream: stream.clone(),
            conn: None,
            last_delivery: None,
            last_save: Instant::now(),
            last_state: None,
            topic: super::topic::TopicTarget::of(&saved),
        };
        let pager = Pager::new(io, saved, ctx.options.page_chars, ctx.options.max_pages);
        Session {
            liveness: Liveness::new(ctx.options.orphan_after),
            ctx,
            pager,
            stream,
        }
    }

    /// Runs the session to its end: a new one first shows its placeholder;
    /// a resumed one puts its current page back as stored.
    pub(super) async fn run(mut self, resumed: bool) {
        let _guard = RunningGuard {
            ctx: self.ctx.clone(),
            session: self.pager.saved.session_id.to_string(),
        };
        let (agent, session) = (
            self.pager.saved.agent_id.clone(),
            self.pager.saved.session_id.clone(),
        );
        if resumed {
            tracing::info!(agent = %agent, session = %session, last_id = %self.pager.saved.last_id, "resuming a session");
            self.pager.resumed();
        } else {
            self.pager.placeholder().await;
            if let Err(stop) = self.pager.save(true).await {
                return self.stopped(stop).await;
            }
        }
        match self.follow().await {
            Ok(()) => tracing::info!(agent = %agent, session = %session, "session forwarded"),
            Err(stop) => self.stopped(stop).await,
        }
    }

    async fn stopped(&mut self, stop: Stop) {
        let session = self.pager.saved.session_id.clone();
        match stop {
            Stop::Lost => {
                tracing::info!(agent = %self.pager.saved.agent_id, session = %session, "session taken over by another replica, or finished by one");
            }
            Stop::Cancelled => self.hand_over().await,
        }
    }

    async fn hand_over(&mut self) {
        let delivered = match self.pager.io.last_delivery.take() {
            None => true,
            Some(d) => tokio::time::timeout(STOP_GRACE, d.wait()).await.is_ok(),
        };
        let sid = self.pager.saved.session_id.clone();
        if !delivered {
            tracing::warn!(session = %sid, "last edit still queued: leaving the lock to expire");
            return;
        }
        let token = self.ctx.token.clone();
        if let Ok(conn) = self.pager.io.conn().await
            && let Err(e) = store::release(conn, &sid, &token).await
        {
            tracing::warn!(session = %sid, error = %e, "releasing the forwarder lock");
        }
        tracing::info!(session = %sid, "stopped forwarding; the session stays active for another replica");
    }

    async fn follow(&mut self) -> Result<(), Stop> {
        let opts = StreamReadOptions::default()
            .block(self.ctx.options.block.as_millis() as usize)
            .count(BATCH);
        loop {
            if self.ctx.cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            let cancel = self.ctx.cancel.clone();
            let stream = self.stream.clone();
            let last_id = self.pager.saved.last_id.clone();
            let io = &mut self.pager.io;
            let read = async {
                let conn = io.conn().await?;
                redis::AsyncCommands::xread_options::<_, _, Option<StreamReadReply>>(
                    conn,
                    &[&stream],
                    &[&last_id],
                    &opts,
                )
                .await
            };
            let reply = tokio::select! {
                () = cancel.cancelled() => return Err(Stop::Cancelled),
                r = read => r,
            };
            match reply {
                Ok(Some(reply)) => {
                    self.liveness.entry_arrived();
                    let entries: Vec<_> = reply.keys.into_iter().flat_map(|k| k.ids).collect();
                    for entry in entries {
                        if let Some(done) = self.apply(entry).await? {
                            self.end(&done).await;
                            return Ok(());
                        }
                    }
                    self.pager.flush().await?;
                }
                Ok(None) => {
                    if self.pager.io.last_save.elapsed() >= self.ctx.options.lock_ttl / 3 {
                        self.pager.save(false).await?;
                    }
                    self.check_liveness().await;
                }
                Err(e) => {
                    tracing::warn!(session = %self.pager.saved.session_id, error = %e, "reading the output stream; reconnecting");
                    self.pager.io.conn = None;
                    self.pager.io.pause(Duration::from_secs(1)).await?;
                }
            }
        }
    }

    /// Applies one stream entry; its `done` once the session is finished.
    async fn apply(&mut self, entry: StreamId) -> Result<Option<DonePayload>, Stop> {
        match parse_entry(&entry) {
            Ok(event) => self.pager.apply(&entry.id, event).await,
            Err(e) => {
                tracing::warn!(session = %self.pager.saved.session_id, entry = %entry.id, error = %e, "skipping a malformed output entry");
                self.pager.malformed(&entry.id).await?;
                Ok(None)
            }
        }
    }

    /// Looks at the agent's presence while the stream is silent; ends the
    /// session (a `done {error}` written into its stream, read back like any
    /// other) once the agent has been gone for the grace period.
    async fn check_liveness(&mut self) {
        let agent = self.pager.saved.agent_id.clone();
        let presence = names::presence_key(&agent);
        if !self.liveness.due() {
            return;
        }
        let online = match self.pager.io.conn().await {
            Ok(conn) => {
                redis::cmd("EXISTS")
                    .arg(&presence)
                    .query_async::<i64>(conn)
                    .await
            }
            Err(e) => Err(e),
        };
        let online = match online {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(agent = %agent, session = %self.pager.saved.session_id, error = %e, "looking at the agent's presence");
                self.pager.io.conn = None;
                return;
            }
        };
        let Some(done) = self.liveness.observe(online) else {
            return;
        };
        tracing::warn!(agent = %agent, session = %self.pager.saved.session_id, "the agent went offline in the middle of the session; ending it");
        let stream = self.stream.clone();
        let written = match self.pager.io.conn().await {
            Ok(conn) => match crate::commands::done_pipeline(&stream, &done) {
                Ok(pipe) => pipe.query_async::<()>(conn).await,
                Err(e) => {
                    tracing::error!(error = %e, "encoding a done event");
                    return;
                }
            },
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => self.liveness.ended(),
            Err(e) => {
                tracing::warn!(session = %self.pager.saved.session_id, error = %e, "writing the done of an orphaned session; trying again");
                self.pager.io.conn = None;
            }
        }
    }

    /// The session is shown to its end: it is cleared from the shared state
    /// before anyone is told it finished, so a listener never sees a
    /// finished session still active.
    async fn end(&mut self, done: &DonePayload) {
        let sid = self.pager.saved.session_id.clone();
        let token = self.ctx.token.clone();
        let mut backoff = Backoff::new(FINISH_PAUSE, FINISH_PAUSE)
            .attempts(FINISH_ATTEMPTS)
            .without_jitter();
        loop {
            let result = match self.pager.io.conn().await {
                Ok(conn) => store::finish(conn, &sid, &token).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => break,
                Err(e) => {
                    let attempt = backoff.failures() + 1;
                    tracing::warn!(session = %sid, attempt, error = %e, "clearing a finished session");
                    self.pager.io.conn = None;
                    let Some(delay) = backoff.next_delay() else {
                        tracing::error!(session = %sid, "could not clear a finished session: it will be resumed and finished again");
                        break;
                    };
                    if self.pager.io.pause(delay).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = self.ctx.finished.send(SessionFinished {
            agent_id: self.pager.saved.agent_id.clone(),
            session_id: sid,
            chat_id: self.pager.saved.chat_id,
            status: done.status,
            exit_code: done.exit_code,
            duration_ms: done.duration_ms,
        });
    }
}
