//! One session's forwarding task: reads the output stream from the last
//! delivered entry, renders it into pages, and keeps its progress in Redis
//! so that any replica can carry on where this one stopped.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use remoteagent_proto::events::{DonePayload, OutputEvent};
use remoteagent_proto::names;
use tokio::time::Instant;

use super::page::{self, Line, Page};
use super::store::{self, SavedState};
use super::{Ctx, SessionFinished};
use crate::telegram::outbox::Delivery;
use crate::telegram::render::fit_prefix;
use crate::telegram::{InlineKeyboard, TelegramError};

/// Entries read at once. A batch ends with one (coalesced) edit.
const BATCH: usize = 500;
/// How long a stopping task waits for its last edit before giving up the
/// lock; if the edit is still queued after that, the lock is left to expire
/// so that the next owner cannot be overtaken by this stale edit.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Attempts at sending a new message when Telegram is unreachable.
const SEND_ATTEMPTS: u32 = 5;

/// Why the task stops early.
enum Stop {
    /// This replica was told to stop; the session stays active for others.
    Cancelled,
    /// Another replica owns the session now, or it was finished elsewhere.
    Lost,
}

pub(super) struct Session {
    ctx: Arc<Ctx>,
    saved: SavedState,
    page: Page,
    stream: String,
    keyboard: InlineKeyboard,
    conn: Option<MultiplexedConnection>,
    last_delivery: Option<Delivery>,
    last_save: Instant,
    /// Set when Telegram refuses this chat (e.g. the user blocked the bot):
    /// the stream is still followed to its end, but nothing more is sent.
    muted: bool,
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

impl Session {
    pub(super) fn new(
        ctx: Arc<Ctx>,
        saved: SavedState,
        conn: Option<MultiplexedConnection>,
    ) -> Self {
        let page = Page {
            message: saved.message_id,
            html: saved.html.clone(),
            chars: saved.chars,
        };
        Session {
            stream: names::output_stream(&saved.agent_id, &saved.session_id),
            keyboard: page::stop_keyboard(&saved.session_id),
            ctx,
            saved,
            page,
            conn,
            last_delivery: None,
            last_save: Instant::now(),
            muted: false,
        }
    }

    /// Runs the session to its end. `resumed` sessions first put their
    /// current page back as stored (a stale edit may have been lost).
    pub(super) async fn run(mut self, resumed: bool) {
        let _guard = RunningGuard {
            ctx: self.ctx.clone(),
            session: self.saved.session_id.to_string(),
        };
        if resumed {
            tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, last_id = %self.saved.last_id, "resuming a session");
            if self.page.message != 0 && !self.page.is_empty() {
                self.last_delivery = Some(self.ctx.outbox.edit(
                    self.saved.chat_id,
                    self.page.message,
                    self.page.html.clone(),
                    Some(self.keyboard.clone()),
                ));
            }
        }
        match self.follow().await {
            Ok(()) => {
                tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, "session forwarded");
            }
            Err(Stop::Lost) => {
                tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, "session taken over by another replica");
            }
            Err(Stop::Cancelled) => self.hand_over().await,
        }
    }

    async fn hand_over(&mut self) {
        let delivered = match self.last_delivery.take() {
            None => true,
            Some(d) => tokio::time::timeout(STOP_GRACE, d.wait()).await.is_ok(),
        };
        if !delivered {
            tracing::warn!(session = %self.saved.session_id, "last edit still queued: leaving the lock to expire");
            return;
        }
        let sid = self.saved.session_id.clone();
        let token = self.ctx.token.clone();
        if let Ok(conn) = self.conn().await
            && let Err(e) = store::release(conn, &sid, &token).await
        {
            tracing::warn!(session = %sid, error = %e, "releasing the forwarder lock");
        }
        tracing::info!(session = %sid, "stopped forwarding; the session stays active for another replica");
    }

    async fn conn(&mut self) -> redis::RedisResult<&mut MultiplexedConnection> {
        if self.conn.is_none() {
            self.conn = Some(self.ctx.connect().await?);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no Redis connection",
            ))),
        }
    }

    async fn sleep_or_cancel(&self, d: Duration) -> Result<(), Stop> {
        tokio::select! {
            () = self.ctx.cancel.cancelled() => Err(Stop::Cancelled),
            () = tokio::time::sleep(d) => Ok(()),
        }
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
            let last_id = self.saved.last_id.clone();
            let read = async {
                let conn = self.conn().await?;
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
                    let entries: Vec<_> = reply.keys.into_iter().flat_map(|k| k.ids).collect();
                    let mut finished = false;
                    for entry in entries {
                        if self.apply(entry).await? {
                            finished = true;
                            break;
                        }
                    }
                    if finished {
                        return Ok(());
                    }
                    self.flush().await?;
                }
                Ok(None) => {
                    if self.last_save.elapsed() >= self.ctx.options.lock_ttl / 3 {
                        self.save(false).await?;
                    }
                }
                Err(e) => {
                    tracing::warn!(session = %self.saved.session_id, error = %e, "reading the output stream; reconnecting");
                    self.conn = None;
                    self.sleep_or_cancel(Duration::from_secs(1)).await?;
                }
            }
        }
    }

    /// Applies one stream entry; true once the session is finished.
    async fn apply(&mut self, entry: redis::streams::StreamId) -> Result<bool, Stop> {
        let event = entry
            .map
            .get(names::STREAM_FIELD)
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            .ok_or_else(|| format!("no '{}' field", names::STREAM_FIELD))
            .and_then(|raw| serde_json::from_str::<OutputEvent>(&raw).map_err(|e| e.to_string()));
        match event {
            Err(e) => {
                tracing::warn!(session = %self.saved.session_id, entry = %entry.id, error = %e, "skipping a malformed output entry");
            }
            Ok(OutputEvent::Chunk(chunk)) => self.append_text(&chunk.text).await?,
            Ok(OutputEvent::Notice(n)) => self.append_line(Line::notice(&n.text), true).await?,
            Ok(OutputEvent::ApprovalRequest(a)) => {
                self.append_line(Line::approval(&a.tool, &a.summary), true)
                    .await?;
            }
            Ok(OutputEvent::Done(done)) => {
                self.finish(done).await?;
                return Ok(true);
            }
            Ok(OutputEvent::Started(_)) => {}
            Ok(OutputEvent::Unknown) => {
                tracing::debug!(session = %self.saved.session_id, entry = %entry.id, "skipping an unknown output event");
            }
        }
        self.saved.last_id = entry.id;
        self.saved.skip = 0;
        Ok(false)
    }

    fn limit(&self) -> usize {
        self.ctx.options.page_chars
    }

    async fn append_text(&mut self, text: &str) -> Result<(), Stop> {
        // A chunk that was cut by a page turn before a restart: its first
        // `skip` bytes are already on earlier pages.
        let base = self.saved.skip;
        let text = match text.get(base..) {
            Some(rest) => rest,
            None => {
                tracing::warn!(session = %self.saved.session_id, skip = base, "resume offset outside the chunk; showing it whole");
                text
            }
        };
        let limit = self.limit();
        let mut offset = 0;
        while offset < text.len() {
            let room = self.page.room(limit);
            if room == 0 {
                self.turn_page(base + offset).await?;
                continue;
            }
            let rest = &text[offset..];
            let take = fit_prefix(rest, room, self.page.chars, limit);
            self.page.push_text(&rest[..take]);
            offset += take;
            if offset < text.len() {
                self.turn_page(base + offset).await?;
            }
        }
        Ok(())
    }

    /// Appends a line of its own (a notice, an approval request), starting a
    /// new page if it does not fit on this one.
    async fn append_line(&mut self, line: Line, trailing_newline: bool) -> Result<(), Stop> {
        let trailing = usize::from(trailing_newline);
        let mut lead = usize::from(!self.page.ends_with_newline());
        if lead + line.chars + trailing > self.page.room(self.limit()) && !self.page.is_empty() {
            self.turn_page(self.saved.skip).await?;
            lead = 0;
        }
        if lead == 1 {
            self.page.push_text("\n");
        }
        self.page.push_html(&line.html, line.chars);
        if trailing_newline {
            self.page.push_text("\n");
        }
        Ok(())
    }

    /// Finishes the current page (its final text, no button) and starts an
    /// empty one. `consumed` bytes of the entry being applied are now shown.
    async fn turn_page(&mut self, consumed: usize) -> Result<(), Stop> {
        self.deliver_page(None).await;
        self.page = Page::default();
        self.saved.skip = consumed;
        self.save(true).await
    }

    /// Shows the current page as it is now and waits until Telegram has it.
    async fn deliver_page(&mut self, keyboard: Option<InlineKeyboard>) {
        if self.muted {
            return;
        }
        let chat = self.saved.chat_id;
        if self.page.message == 0 {
            let html = self.page.html.clone();
            self.page.message = self.send(html, keyboard).await;
            return;
        }
        let delivery = self.ctx.outbox.edit(
            chat,
            self.page.message,
            self.page.html.clone(),
            keyboard.clone(),
        );
        self.last_delivery = None;
        if let Err(e) = delivery.wait().await {
            // The message may have been deleted by the user: show the page
            // as a new message rather than lose it.
            tracing::warn!(session = %self.saved.session_id, error = %e, "editing a page failed; sending it anew");
            if matches!(e, TelegramError::Api { .. }) {
                let html = self.page.html.clone();
                self.page.message = self.send(html, keyboard).await;
            }
        }
    }

    /// Sends a new message; 0 if Telegram refused it (the chat is then muted).
    async fn send(&mut self, html: String, keyboard: Option<InlineKeyboard>) -> i64 {
        let chat = self.saved.chat_id;
        for attempt in 1..=SEND_ATTEMPTS {
            match self
                .ctx
                .outbox
                .send(chat, html.clone(), keyboard.clone())
                .await
            {
                Ok(id) => return id,
                Err(TelegramError::Api { code, description }) => {
                    tracing::error!(session = %self.saved.session_id, code, %description, "Telegram refused a message: muting this session");
                    self.muted = true;
                    return 0;
                }
                Err(e) => {
                    tracing::warn!(session = %self.saved.session_id, attempt, error = %e, "sending a message failed");
                    tokio::time::sleep(Duration::from_secs(1 << attempt.min(4))).await;
                }
            }
        }
        tracing::error!(session = %self.saved.session_id, "Telegram unreachable: output of this page not shown");
        0
    }

    /// The end of a batch: show the page with its Stop button (an edit the
    /// outbox may merge with later ones) and store the progress.
    async fn flush(&mut self) -> Result<(), Stop> {
        if !self.muted {
            if self.page.message == 0 {
                let html = if self.page.is_empty() {
                    page::placeholder(&self.saved.agent_name)
                } else {
                    self.page.html.clone()
                };
                self.page.message = self.send(html, Some(self.keyboard.clone())).await;
            } else if !self.page.is_empty() {
                self.last_delivery = Some(self.ctx.outbox.edit(
                    self.saved.chat_id,
                    self.page.message,
                    self.page.html.clone(),
                    Some(self.keyboard.clone()),
                ));
            }
        }
        self.save(true).await
    }

    async fn finish(&mut self, done: DonePayload) -> Result<(), Stop> {
        let status = Line::status(&done);
        if self.page.is_empty() {
            self.page.push_html(&status.html, status.chars);
        } else if status.chars < self.page.room(self.limit()) {
            self.page.push_text("\n");
            self.page.push_html(&status.html, status.chars);
        } else {
            self.turn_page(self.saved.skip).await?;
            self.page.push_html(&status.html, status.chars);
        }
        self.deliver_page(None).await;
        // The session is cleared from the shared state before anyone is told it
        // finished, so a listener never sees a finished session still active.
        let sid = self.saved.session_id.clone();
        let token = self.ctx.token.clone();
        for attempt in 1..=5u32 {
            let result = match self.conn().await {
                Ok(conn) => store::finish(conn, &sid, &token).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => {
                    self.notify_finished(&done);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(session = %sid, attempt, error = %e, "clearing a finished session");
                    self.conn = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::error!(session = %sid, "could not clear a finished session: it will be resumed and finished again");
        self.notify_finished(&done);
        Ok(())
    }

    fn notify_finished(&self, done: &DonePayload) {
        let _ = self.ctx.finished.send(SessionFinished {
            agent_id: self.saved.agent_id.clone(),
            session_id: self.saved.session_id.clone(),
            chat_id: self.saved.chat_id,
            status: done.status,
            exit_code: done.exit_code,
            duration_ms: done.duration_ms,
        });
    }

    /// Stores the progress (`with_state`) or only refreshes the lock. A Redis
    /// failure is logged and tolerated (the next save catches up); losing
    /// the session to another replica stops this task.
    async fn save(&mut self, with_state: bool) -> Result<(), Stop> {
        self.saved.message_id = self.page.message;
        self.saved.html = self.page.html.clone();
        self.saved.chars = self.page.chars;
        let state = with_state.then(|| self.saved.clone());
        let sid = self.saved.session_id.clone();
        let token = self.ctx.token.clone();
        let ttl = self.ctx.options.lock_ttl;
        let result = match self.conn().await {
            Ok(conn) => store::save(conn, &sid, state.as_ref(), &token, ttl).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(true) => {
                self.last_save = Instant::now();
                Ok(())
            }
            Ok(false) => Err(Stop::Lost),
            Err(e) => {
                tracing::warn!(session = %sid, error = %e, "saving forwarder progress");
                self.conn = None;
                Ok(())
            }
        }
    }
}
