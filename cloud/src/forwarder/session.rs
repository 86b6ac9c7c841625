//! One session's forwarding task: reads the output stream from the last
//! delivered entry, renders it into pages, and keeps its progress in Redis
//! so that any replica can carry on where this one stopped.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use remoteagent_proto::events::{
    ApprovalRequestPayload, ApprovalResolvedPayload, ChunkPayload, DonePayload, DoneStatus,
    OutputEvent,
};
use remoteagent_proto::names;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::page::{self, Line, Page};
use super::store::{self, ApprovalMessage, SavedState};
use super::{Ctx, SessionFinished};
use crate::telegram::outbox::Delivery;
use crate::telegram::render::fit_prefix;
use crate::telegram::{Document, DocumentSource, InlineKeyboard, TelegramError};

/// Entries read at once. A batch ends with one (coalesced) edit.
const BATCH: usize = 500;
/// How long a stopping task waits for its last edit before giving up the
/// lock; if the edit is still queued after that, the lock is left to expire
/// so that the next owner cannot be overtaken by this stale edit.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Attempts at sending a new message when Telegram is unreachable.
const SEND_ATTEMPTS: u32 = 5;
/// Entries read at once when the whole stream is re-read for the output
/// file: chunks are up to 16 KiB, so a batch stays within a few MiB.
const FILE_BATCH: usize = 200;
/// Attempts at reading the stream for the output file.
const FILE_READ_ATTEMPTS: u32 = 5;
/// Longest time between two looks at the presence key of a silent
/// session's agent.
const PRESENCE_CHECK_MAX: Duration = Duration::from_secs(10);
/// The status message of a session ended because its agent went away.
const OFFLINE_MESSAGE: &str = "the agent went offline before the session finished";

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
    /// Whether the session's daemon is still there (see [`Liveness`]).
    liveness: Liveness,
}

/// What a silent session's task knows about its agent: a daemon that died
/// mid-session never writes `done`, and without one the session would be
/// followed (and shown with its Stop button) until its state expires.
struct Liveness {
    /// When the last stream entry arrived (or the task started).
    last_entry: Instant,
    /// When the presence key was last looked at.
    checked: Option<Instant>,
    /// Since when the presence key has been seen missing, without being
    /// seen back since.
    offline_since: Option<Instant>,
    /// This task wrote the `done` already and waits to read it back.
    ended: bool,
}

impl Liveness {
    fn new() -> Self {
        Liveness {
            last_entry: Instant::now(),
            checked: None,
            offline_since: None,
            ended: false,
        }
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
            liveness: Liveness::new(),
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
                    self.liveness.last_entry = Instant::now();
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
                    self.end_if_orphaned().await;
                }
                Err(e) => {
                    tracing::warn!(session = %self.saved.session_id, error = %e, "reading the output stream; reconnecting");
                    self.conn = None;
                    self.sleep_or_cancel(Duration::from_secs(1)).await?;
                }
            }
        }
    }

    /// Ends a session whose daemon is gone: once the stream has been silent
    /// and the agent's presence key missing for `orphan_after`, writes the
    /// `done {error}` the daemon never will into the stream. The next read
    /// applies it like any other `done`, so every replica, the page and the
    /// session's row (through [`SessionFinished`]) see the same end. A
    /// daemon restarted later finds the `done` and adds none.
    async fn end_if_orphaned(&mut self) {
        let grace = self.ctx.options.orphan_after;
        let every = (grace / 2).min(PRESENCE_CHECK_MAX);
        let live = &self.liveness;
        if live.ended || live.checked.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        self.liveness.checked = Some(Instant::now());
        let presence = names::presence_key(&self.saved.agent_id);
        let online = match self.conn().await {
            Ok(conn) => {
                redis::cmd("EXISTS")
                    .arg(&presence)
                    .query_async::<i64>(conn)
                    .await
            }
            Err(e) => Err(e),
        };
        match online {
            Ok(n) if n > 0 => {
                self.liveness.offline_since = None;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, error = %e, "looking at the agent's presence");
                self.conn = None;
                return;
            }
        }
        let offline_since = *self.liveness.offline_since.get_or_insert_with(Instant::now);
        if offline_since.elapsed() < grace || self.liveness.last_entry.elapsed() < grace {
            return;
        }
        tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, offline_secs = offline_since.elapsed().as_secs(), "the agent went offline in the middle of the session; ending it");
        let done = OutputEvent::Done(DonePayload {
            status: DoneStatus::Error,
            exit_code: None,
            duration_ms: 0,
            message: Some(OFFLINE_MESSAGE.to_string()),
            // Nothing is known to be lost: what the daemon wrote is read.
            chunks: 0,
            withheld_bytes: 0,
        });
        let json = match serde_json::to_string(&done) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(session = %self.saved.session_id, error = %e, "encoding a done event");
                return;
            }
        };
        let stream = self.stream.clone();
        let written = match self.conn().await {
            Ok(conn) => {
                redis::pipe()
                    .cmd("XADD")
                    .arg(&stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(names::OUTPUT_STREAM_MAXLEN)
                    .arg("*")
                    .arg(names::STREAM_FIELD)
                    .arg(json)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&stream)
                    .arg(names::OUTPUT_STREAM_TTL_SECS)
                    .ignore()
                    .query_async::<()>(conn)
                    .await
            }
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => self.liveness.ended = true,
            Err(e) => {
                tracing::warn!(session = %self.saved.session_id, error = %e, "writing the done of an orphaned session; trying again");
                self.conn = None;
            }
        }
    }

    /// Applies one stream entry; true once the session is finished.
    async fn apply(&mut self, entry: StreamId) -> Result<bool, Stop> {
        match parse_entry(&entry) {
            Err(e) => {
                tracing::warn!(session = %self.saved.session_id, entry = %entry.id, error = %e, "skipping a malformed output entry");
            }
            Ok(OutputEvent::Chunk(chunk)) => self.apply_chunk(&chunk).await?,
            Ok(OutputEvent::Notice(n)) => self.append_line(Line::notice(&n.text), true).await?,
            Ok(OutputEvent::ApprovalRequest(a)) => self.show_approval(&a).await?,
            Ok(OutputEvent::ApprovalResolved(r)) => self.resolve_approval(&r).await?,
            Ok(OutputEvent::Done(done)) => {
                self.finish(done, &entry.id).await?;
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

    /// Characters the current page may hold. The last page the budget allows
    /// keeps room for the line that says the output goes on in a file.
    fn limit(&self) -> usize {
        let full = self.ctx.options.page_chars;
        if !self.saved.more.overflow && self.on_last_page() {
            full.saturating_sub(Line::overflow().chars + 1)
        } else {
            full
        }
    }

    fn max_pages(&self) -> u32 {
        u32::try_from(self.ctx.options.max_pages.max(1)).unwrap_or(u32::MAX)
    }

    /// Whether the current page is the last (or past the last) one the page
    /// budget allows.
    fn on_last_page(&self) -> bool {
        self.saved.more.pages + 1 >= self.max_pages()
    }

    /// A chunk of output: notes lost chunks (a `seq` jump: the stream was
    /// trimmed before this replica read it), then shows the text.
    async fn apply_chunk(&mut self, chunk: &ChunkPayload) -> Result<(), Stop> {
        let expected = self.saved.more.next_seq;
        if chunk.seq > expected {
            let lost = chunk.seq - expected;
            tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, expected, seq = chunk.seq, lost, "output chunks were lost before they were read");
            if !self.saved.more.overflow {
                // In overflow the file's caption reports losses instead.
                self.append_line(Line::lost(lost), true).await?;
            }
        }
        // From here on, a replica resuming in the middle of this chunk must
        // not note the same loss again: progress saved while the chunk is
        // shown already carries the warning.
        self.saved.more.next_seq = expected.max(chunk.seq);
        self.append_text(&chunk.text).await?;
        self.saved.more.next_seq = self.saved.more.next_seq.max(chunk.seq + 1);
        Ok(())
    }

    async fn append_text(&mut self, text: &str) -> Result<(), Stop> {
        if self.saved.more.overflow || text.is_empty() {
            // Past the page budget, output is read back for the file at the end.
            return Ok(());
        }
        if self.saved.more.pages >= self.max_pages() {
            // The last page the budget allows was closed by an approval
            // request: say where the rest goes on a page of its own.
            return self.enter_overflow().await;
        }
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
                if self.saved.more.overflow {
                    return Ok(());
                }
                continue;
            }
            let rest = &text[offset..];
            let take = fit_prefix(rest, room, self.page.chars, limit);
            self.page.push_text(&rest[..take]);
            offset += take;
            if offset < text.len() {
                self.turn_page(base + offset).await?;
                if self.saved.more.overflow {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Appends a line of its own (a notice, an approval request), starting a
    /// new page if it does not fit on this one.
    async fn append_line(&mut self, line: Line, trailing_newline: bool) -> Result<(), Stop> {
        if self.saved.more.overflow {
            return self.send_alone(line).await;
        }
        let trailing = usize::from(trailing_newline);
        let mut lead = usize::from(!self.page.ends_with_newline());
        if lead + line.chars + trailing > self.page.room(self.limit()) && !self.page.is_empty() {
            self.turn_page(self.saved.skip).await?;
            if self.saved.more.overflow {
                return self.send_alone(line).await;
            }
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

    /// Past the page budget, a line that is not output (a notice, rare) is
    /// sent as a message of its own: the last live page is full.
    async fn send_alone(&mut self, line: Line) -> Result<(), Stop> {
        if !self.muted {
            self.send(line.html, None).await;
        }
        Ok(())
    }

    /// Finishes the current page (its final text, no button) and starts an
    /// empty one. `consumed` bytes of the entry being applied are now shown.
    /// On the last page the budget allows, it ends live output instead.
    async fn turn_page(&mut self, consumed: usize) -> Result<(), Stop> {
        if self.on_last_page() {
            return self.enter_overflow().await;
        }
        self.next_page(consumed).await
    }

    /// [`Session::turn_page`] regardless of the budget (for the status line).
    async fn next_page(&mut self, consumed: usize) -> Result<(), Stop> {
        self.deliver_page(None).await;
        self.page = Page::default();
        self.saved.more.pages += 1;
        self.saved.skip = consumed;
        self.save(true).await
    }

    /// The page budget is spent: the current page ends with a line saying
    /// that the whole output will come as a file, and keeps the Stop button
    /// (the session still runs); output is no longer shown live.
    async fn enter_overflow(&mut self) -> Result<(), Stop> {
        let line = Line::overflow();
        if !self.page.ends_with_newline() {
            self.page.push_text("\n");
        }
        self.page.push_html(&line.html, line.chars);
        self.saved.more.overflow = true;
        tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, pages = self.saved.more.pages + 1, "page budget spent: the output will be attached as a file");
        let keyboard = Some(self.keyboard.clone());
        self.deliver_page(keyboard).await;
        self.save(true).await
    }

    /// Ends the current page where it is, so that a message sent now (an
    /// approval request) comes after everything shown so far, and output
    /// after it goes on a new page below it.
    async fn break_page(&mut self) -> Result<(), Stop> {
        if self.saved.more.overflow || self.muted {
            // Past the budget the last live page keeps its line and button.
            return Ok(());
        }
        if self.page.is_empty() {
            if self.page.message != 0 {
                // The placeholder stays, without its Stop button: the page
                // that follows the request carries it.
                let delivery = self.ctx.outbox.edit(
                    self.saved.chat_id,
                    self.page.message,
                    page::placeholder(&self.saved.agent_name),
                    None,
                );
                self.last_delivery = None;
                if let Err(e) = delivery.wait().await {
                    tracing::warn!(session = %self.saved.session_id, error = %e, "removing the Stop button of the placeholder");
                }
                self.page = Page::default();
            }
            return Ok(());
        }
        self.deliver_page(None).await;
        self.page = Page::default();
        self.saved.more.pages += 1;
        self.saved.skip = 0;
        Ok(())
    }

    /// An approval request: a new message (so the phone notifies) with
    /// [✅ Approve | ⛔ Deny], remembered by request id so that its verdict,
    /// or a button press on any replica, finds it.
    async fn show_approval(&mut self, a: &ApprovalRequestPayload) -> Result<(), Stop> {
        if self
            .saved
            .more
            .approvals
            .iter()
            .any(|m| m.rid == a.request_id)
        {
            // Applied again after a restart: it is already shown.
            return Ok(());
        }
        let keyboard = page::approval_keyboard(&self.saved.session_id, &a.request_id);
        if keyboard.is_none() {
            tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, request = %a.request_id, "approval request id does not fit a button: shown without buttons");
        }
        let html = page::approval_html(&a.tool, &a.summary, a.timeout_secs);
        self.break_page().await?;
        let msg = if self.muted {
            0
        } else {
            self.send(html.clone(), keyboard).await
        };
        tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, request = %a.request_id, message = msg, "approval request shown");
        self.saved.more.add_approval(ApprovalMessage {
            rid: a.request_id.clone(),
            msg,
            html,
            resolved: None,
        });
        self.save(true).await
    }

    /// An approval's verdict: its message shows it, and loses its buttons.
    async fn resolve_approval(&mut self, r: &ApprovalResolvedPayload) -> Result<(), Stop> {
        let Some(entry) = self.saved.more.approval_mut(&r.request_id) else {
            tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, request = %r.request_id, "verdict for an approval request never shown");
            let line = Line::unknown_verdict(&r.request_id, r.allow, &r.reason);
            return self.append_line(line, true).await;
        };
        let html = page::approval_resolved_html(&entry.html, r.allow, &r.reason);
        let msg = entry.msg;
        let first = entry.resolved.is_none();
        entry.resolved = Some(html.clone());
        if first {
            // Stored before the edit: the button handler looks here to tell
            // whether its "⏳" edit may have overtaken this one, and a replica
            // that resumes before the edit was made applies this entry again.
            self.save(true).await?;
        }
        if msg != 0
            && !self.muted
            && let Err(e) = self
                .ctx
                .outbox
                .edit(self.saved.chat_id, msg, html, None)
                .wait()
                .await
        {
            tracing::warn!(session = %self.saved.session_id, request = %r.request_id, error = %e, "showing an approval's verdict");
        }
        tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, request = %r.request_id, allow = r.allow, "approval resolved");
        Ok(())
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
                // After an approval request the next page waits for output:
                // a placeholder would bury the request the user must answer.
                if !self.page.is_empty() || self.saved.more.approvals.is_empty() {
                    let html = if self.page.is_empty() {
                        page::placeholder(&self.saved.agent_name)
                    } else {
                        self.page.html.clone()
                    };
                    self.page.message = self.send(html, Some(self.keyboard.clone())).await;
                }
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

    async fn finish(&mut self, done: DonePayload, entry_id: &str) -> Result<(), Stop> {
        let status = Line::status(&done);
        if self.saved.more.overflow {
            // The last live page loses its Stop button; the status comes with
            // the file, the last message of the session.
            self.deliver_page(None).await;
            if !self.saved.more.file_sent {
                self.send_output_file(&status, &done, entry_id).await?;
            }
        } else {
            // Chunks the daemon wrote after the last one that arrived.
            let missing = done.chunks.saturating_sub(self.saved.more.next_seq);
            let status = if missing > 0 {
                tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, missing, "the last output chunks were lost");
                let lost = Line::lost(missing);
                Line {
                    html: format!("{}\n{}", lost.html, status.html),
                    chars: lost.chars + 1 + status.chars,
                }
            } else {
                status
            };
            if self.page.is_empty() {
                self.page.push_html(&status.html, status.chars);
            } else if status.chars < self.page.room(self.ctx.options.page_chars) {
                self.page.push_text("\n");
                self.page.push_html(&status.html, status.chars);
            } else {
                self.next_page(self.saved.skip).await?;
                self.page.push_html(&status.html, status.chars);
            }
            self.deliver_page(None).await;
        }
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

    /// Re-reads the whole stream into a temporary file and sends it with the
    /// status as its caption; if that is impossible, the status is sent as a
    /// message that says why the file is missing.
    async fn send_output_file(
        &mut self,
        status: &Line,
        done: &DonePayload,
        entry_id: &str,
    ) -> Result<(), Stop> {
        if self.muted {
            return Ok(());
        }
        let _lock = self.keep_lock();
        let file = match self.build_output_file(done, entry_id).await {
            Ok(file) => file,
            Err(e) => {
                tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, error = %e, "assembling the output file");
                let html = format!(
                    "{}\n<i>⚠️ The whole output could not be read back to attach it.</i>",
                    status.html
                );
                self.send(html, None).await;
                return Ok(());
            }
        };
        let cut = (file.written < file.total).then_some((file.written, file.total));
        let caption = page::file_caption(status, file.lost, cut);
        if file.written == 0 {
            // Telegram refuses empty files; nothing of the output is left.
            let html = format!("{caption}\n<i>⚠️ No output is left to attach.</i>");
            self.send(html, None).await;
        } else {
            let document = Document {
                file_name: format!("output-{}.txt", self.saved.session_id),
                caption: Some(caption.clone()),
                source: DocumentSource::File(file.path.to_path_buf()),
            };
            if let Err(e) = self.send_document(document).await {
                tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, error = %e, "sending the output file");
                let html = format!("{caption}\n<i>⚠️ Telegram did not accept the output file.</i>");
                self.send(html, None).await;
            } else {
                tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, bytes = file.written, total = file.total, lost = file.lost, "output file sent");
            }
        }
        drop(file);
        self.saved.more.file_sent = true;
        self.save(true).await
    }

    /// Refreshes the session's lock while a long step (reading the stream
    /// back, uploading up to 50 MB) holds this task, so that no other replica
    /// takes the session over meanwhile and sends the file a second time.
    /// Stops when the returned guard is dropped.
    fn keep_lock(&self) -> AbortOnDrop {
        let ctx = self.ctx.clone();
        let session = self.saved.session_id.clone();
        AbortOnDrop(tokio::spawn(async move {
            let ttl = ctx.options.lock_ttl;
            let mut conn: Option<MultiplexedConnection> = None;
            loop {
                tokio::time::sleep(ttl / 3).await;
                if conn.is_none() {
                    conn = ctx.connect().await.ok();
                }
                let Some(c) = conn.as_mut() else {
                    continue;
                };
                match store::save(c, &session, None, &ctx.token, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(session = %session, "lost the session lock while sending the output file");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(session = %session, error = %e, "refreshing the session lock");
                        conn = None;
                    }
                }
            }
        }))
    }

    /// Sends a document, retrying while Telegram is unreachable (a send is
    /// not retried by the outbox since it may have arrived; a second copy of
    /// the file is better than none).
    async fn send_document(&mut self, document: Document) -> Result<i64, TelegramError> {
        let chat = self.saved.chat_id;
        let mut attempt = 1;
        loop {
            match self.ctx.outbox.send_document(chat, document.clone()).await {
                Err(TelegramError::Transport(e)) if attempt < SEND_ATTEMPTS => {
                    tracing::warn!(session = %self.saved.session_id, attempt, error = %e, "sending the output file failed");
                    tokio::time::sleep(Duration::from_secs(1 << attempt.min(4))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The chunks of the stream up to `last_id` (the `done` entry), in order,
    /// written to a temporary file up to the upload limit.
    async fn build_output_file(
        &mut self,
        done: &DonePayload,
        last_id: &str,
    ) -> Result<OutputFile, String> {
        let cap = self.ctx.options.max_document_bytes;
        let (file, path) = tempfile::Builder::new()
            .prefix("remoteagent-output-")
            .suffix(".txt")
            .tempfile()
            .map_err(|e| format!("creating a temporary file: {e}"))?
            .into_parts();
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
        let mut result = OutputFile {
            path,
            written: 0,
            total: 0,
            lost: 0,
        };
        let mut next_seq = 0u64;
        let mut start = "-".to_string();
        loop {
            let batch = self.read_range(&start, last_id).await?;
            let n = batch.len();
            for entry in batch {
                if let Ok(OutputEvent::Chunk(chunk)) = parse_entry(&entry) {
                    result.lost += chunk.seq.saturating_sub(next_seq);
                    next_seq = next_seq.max(chunk.seq + 1);
                    let len = chunk.text.len() as u64;
                    result.total += len;
                    let room = cap.saturating_sub(result.written);
                    // Cut on a character boundary: the file stays valid UTF-8.
                    let take = if len <= room {
                        chunk.text.len()
                    } else {
                        chunk
                            .text
                            .floor_char_boundary(usize::try_from(room).unwrap_or(usize::MAX))
                    };
                    if take > 0 {
                        out.write_all(&chunk.text.as_bytes()[..take])
                            .await
                            .map_err(|e| format!("writing the output file: {e}"))?;
                        result.written += take as u64;
                    }
                }
                start = format!("({}", entry.id);
            }
            if n < FILE_BATCH {
                break;
            }
        }
        result.lost += done.chunks.saturating_sub(next_seq);
        out.flush()
            .await
            .map_err(|e| format!("writing the output file: {e}"))?;
        Ok(result)
    }

    /// One `XRANGE` batch, retried over reconnects.
    async fn read_range(&mut self, start: &str, end: &str) -> Result<Vec<StreamId>, String> {
        let stream = self.stream.clone();
        let mut attempt = 1;
        loop {
            let reply = match self.conn().await {
                Ok(conn) => {
                    redis::cmd("XRANGE")
                        .arg(&stream)
                        .arg(start)
                        .arg(end)
                        .arg("COUNT")
                        .arg(FILE_BATCH)
                        .query_async::<StreamRangeReply>(conn)
                        .await
                }
                Err(e) => Err(e),
            };
            match reply {
                Ok(r) => return Ok(r.ids),
                Err(e) if attempt < FILE_READ_ATTEMPTS => {
                    tracing::warn!(session = %self.saved.session_id, attempt, error = %e, "reading the stream back; reconnecting");
                    self.conn = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    attempt += 1;
                }
                Err(e) => return Err(format!("reading the stream back: {e}")),
            }
        }
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

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The output file of a session past its page budget.
struct OutputFile {
    /// Removed when dropped.
    path: tempfile::TempPath,
    /// Bytes in the file.
    written: u64,
    /// Bytes of output in the stream (more than `written` past the limit).
    total: u64,
    /// Chunks missing from the stream.
    lost: u64,
}

/// The event of a stream entry.
fn parse_entry(entry: &StreamId) -> Result<OutputEvent, String> {
    entry
        .map
        .get(names::STREAM_FIELD)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        .ok_or_else(|| format!("no '{}' field", names::STREAM_FIELD))
        .and_then(|raw| serde_json::from_str::<OutputEvent>(&raw).map_err(|e| e.to_string()))
}
