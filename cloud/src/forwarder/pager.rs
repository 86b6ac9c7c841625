//! The pager: the pure core of the forwarder. Stream events go in, Telegram
//! operations come out through [`Io`]; it does no I/O of its own, so the
//! property tests drive it against a strict model of Telegram without
//! Redis or HTTP (`pager/tests.rs`).
//!
//! What it guarantees, whatever Telegram answers:
//! * every message it sends or edits fits Telegram's rules by construction
//!   (at most 4,096 UTF-16 units, never blank, HTML it escaped itself);
//! * a refusal is repaired (a deleted message is sent anew) or said ("⚠️ …
//!   could not be shown"), and the whole output is then attached as a file
//!   at the end;
//! * the status is the last thing shown, and no message of the session
//!   keeps a button once it ended.
//!
//! The only thing it cannot tell the user is that they blocked the bot.

use std::time::Duration;

use remoteagent_proto::events::{
    ApprovalRequestPayload, ApprovalResolvedPayload, ChunkPayload, DonePayload, OutputEvent,
};

use super::page::{self, Line, Page};
use super::store::{ApprovalMessage, SavedState};
use crate::telegram::render::fit_prefix;
use crate::telegram::{Document, DocumentSource, InlineKeyboard, TelegramError};

/// Attempts at a message while Telegram is unreachable, before the output it
/// carries is declared not shown (and attached at the end instead).
const SEND_ATTEMPTS: u32 = 5;
/// Attempts at the session's last messages (the status): longer, since
/// nothing comes after them.
const FINAL_ATTEMPTS: u32 = 10;

/// Why the forwarding of a session stops early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// This replica was told to stop; the session stays active for others.
    Cancelled,
    /// Another replica owns the session now, or it was finished elsewhere.
    Lost,
}

/// The output file of a session, assembled by the I/O side.
pub(super) struct OutputFile {
    pub source: DocumentSource,
    /// Bytes in the file.
    pub written: u64,
    /// Bytes of output in the stream (more than `written` past the limit).
    pub total: u64,
    /// Chunks missing from the stream.
    pub lost: u64,
    /// Keeps a temporary file alive until it was sent.
    pub _guard: Option<tempfile::TempPath>,
}

/// Everything the pager needs from the world.
pub(super) trait Io {
    /// Sends a message; its id.
    async fn send(
        &mut self,
        chat: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Result<i64, TelegramError>;
    /// Edits a message and waits for Telegram's answer ("not modified"
    /// counts as done).
    async fn edit(
        &mut self,
        chat: i64,
        message: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Result<(), TelegramError>;
    /// Queues a live edit that later edits of the same message may replace;
    /// its failure is reported by [`Io::failed_edit`].
    fn edit_soon(&mut self, chat: i64, message: i64, html: String, keyboard: InlineKeyboard);
    /// The error of the last queued edit, once it failed.
    fn failed_edit(&mut self) -> Option<TelegramError>;
    async fn send_document(&mut self, chat: i64, document: Document) -> Result<i64, TelegramError>;
    /// The whole output of the stream up to the `done` entry `entry_id`.
    async fn output_file(
        &mut self,
        done: &DonePayload,
        entry_id: &str,
    ) -> Result<OutputFile, String>;
    /// Stores the progress (`None`: only keeps the session's lock).
    async fn save(&mut self, state: Option<&SavedState>) -> Result<(), Stop>;
    /// Waits before another attempt (cancellable).
    async fn pause(&mut self, d: Duration) -> Result<(), Stop>;
}

/// What became of a message the pager tried to show.
enum Shown {
    /// Telegram has it.
    Yes,
    /// It was refused or could not be delivered; the user is told (or
    /// blocked the bot).
    No,
}

/// One session's pages, driven by its events.
pub(super) struct Pager<I> {
    pub io: I,
    pub saved: SavedState,
    page: Page,
    keyboard: InlineKeyboard,
    /// Capacity of a page in UTF-16 units (Telegram's 4,096; less in tests).
    page_chars: usize,
    max_pages: u32,
    /// The user blocked the bot: the stream is still followed to its end
    /// (so the session ends everywhere), but nothing more can be sent.
    muted: bool,
}

impl<I: Io> Pager<I> {
    pub fn new(io: I, saved: SavedState, page_chars: usize, max_pages: usize) -> Self {
        let page = Page {
            message: saved.message_id,
            html: saved.html.clone(),
            chars: saved.chars,
        };
        Pager {
            io,
            keyboard: page::stop_keyboard(&saved.session_id),
            page,
            page_chars: page_chars.max(MIN_PAGE_CHARS),
            max_pages: u32::try_from(max_pages.max(1)).unwrap_or(u32::MAX),
            saved,
            muted: false,
        }
    }

    fn chat(&self) -> i64 {
        self.saved.chat_id
    }

    /// Where approval requests go.
    fn approval_chat(&self) -> i64 {
        if self.saved.more.approval_chat != 0 {
            self.saved.more.approval_chat
        } else {
            self.saved.chat_id
        }
    }

    /// A resumed session puts its current page back as stored (a stale edit
    /// may have been lost with the replica that made it).
    pub fn resumed(&mut self) {
        if self.page.message != 0
            && page::is_visible(&self.page.html)
            && !self.muted
            && !self.saved.more.file_sent
        {
            let (chat, msg) = (self.chat(), self.page.message);
            self.io
                .edit_soon(chat, msg, self.page.html.clone(), self.keyboard.clone());
        }
    }

    /// Sends the placeholder of a new session.
    pub async fn placeholder(&mut self) {
        if self.page.message == 0 && self.page.is_empty() {
            let html = page::placeholder(&self.saved.agent_name);
            if let Some(id) = self
                .send_now(self.chat(), html, Some(self.keyboard.clone()))
                .await
            {
                self.page.message = id;
            }
        }
    }

    /// Applies one stream entry; its `done` once the session is finished.
    pub async fn apply(
        &mut self,
        entry_id: &str,
        event: OutputEvent,
    ) -> Result<Option<DonePayload>, Stop> {
        match event {
            OutputEvent::Chunk(chunk) => self.apply_chunk(&chunk).await?,
            OutputEvent::Notice(n) => self.append_line(Line::notice(&n.text)).await?,
            OutputEvent::ApprovalRequest(a) => self.show_approval(&a).await?,
            OutputEvent::ApprovalResolved(r) => self.resolve_approval(&r).await?,
            OutputEvent::Done(done) => {
                self.finish(&done, entry_id).await?;
                return Ok(Some(done));
            }
            OutputEvent::Started(_) | OutputEvent::Unknown => {}
        }
        self.saved.last_id = entry_id.to_string();
        self.saved.skip = 0;
        Ok(None)
    }

    /// An entry that could not be read: skipped, and the user told.
    pub async fn malformed(&mut self, entry_id: &str) -> Result<(), Stop> {
        self.append_line(Line::notice(
            "⚠️ an output entry could not be read and was skipped",
        ))
        .await?;
        self.saved.last_id = entry_id.to_string();
        self.saved.skip = 0;
        Ok(())
    }

    /// The end of a batch: show the page with its Stop button (an edit the
    /// outbox may merge with later ones) and store the progress.
    pub async fn flush(&mut self) -> Result<(), Stop> {
        self.check_failed_edit().await?;
        if !self.muted {
            if self.page.message == 0 {
                // After an approval request the next page waits for output:
                // a placeholder would bury the request the user must answer.
                let visible = page::is_visible(&self.page.html);
                if visible || (self.page.is_empty() && self.saved.more.approvals.is_empty()) {
                    let html = if visible {
                        self.page.html.clone()
                    } else {
                        page::placeholder(&self.saved.agent_name)
                    };
                    if let Some(id) = self
                        .send_now(self.chat(), html, Some(self.keyboard.clone()))
                        .await
                    {
                        self.page.message = id;
                    }
                }
            } else if page::is_visible(&self.page.html) {
                let (chat, msg) = (self.chat(), self.page.message);
                self.io
                    .edit_soon(chat, msg, self.page.html.clone(), self.keyboard.clone());
            }
        }
        self.save(true).await
    }

    /// Stores the progress, or only refreshes the lock.
    pub async fn save(&mut self, with_state: bool) -> Result<(), Stop> {
        self.saved.message_id = self.page.message;
        self.saved.html = self.page.html.clone();
        self.saved.chars = self.page.chars;
        if with_state {
            self.io.save(Some(&self.saved)).await
        } else {
            self.io.save(None).await
        }
    }

    /// A live edit that failed: the page is put right now.
    async fn check_failed_edit(&mut self) -> Result<(), Stop> {
        if let Some(e) = self.io.failed_edit() {
            tracing::warn!(session = %self.saved.session_id, error = %e, "a live edit failed; repairing the page");
            self.deliver_page(Some(self.keyboard.clone())).await?;
        }
        Ok(())
    }

    /// Characters the current page may hold. The last page the budget allows
    /// keeps room for the line that says the output goes on in a file.
    fn limit(&self) -> usize {
        if !self.saved.more.overflow && self.on_last_page() {
            self.page_chars
                .saturating_sub(self.overflow_line().chars + 1)
        } else {
            self.page_chars
        }
    }

    /// The line that ends the last live page.
    fn overflow_line(&self) -> Line {
        Line::overflow().fit(self.page_chars / 2)
    }

    /// Whether the current page is the last (or past the last) one the page
    /// budget allows.
    fn on_last_page(&self) -> bool {
        self.saved.more.pages + 1 >= self.max_pages
    }

    /// Output is no longer shown live: past the page budget, or after
    /// Telegram refused some of it. The whole output comes as a file.
    fn live_output_ended(&self) -> bool {
        self.saved.more.overflow
    }

    /// A chunk of output: notes lost chunks (a `seq` jump: the stream was
    /// trimmed or lost before it was read), then shows the text.
    async fn apply_chunk(&mut self, chunk: &ChunkPayload) -> Result<(), Stop> {
        let expected = self.saved.more.next_seq;
        if chunk.seq > expected {
            let lost = chunk.seq - expected;
            tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, expected, seq = chunk.seq, lost, "output chunks were lost before they were read");
            if !self.live_output_ended() {
                // In overflow the file's caption reports losses instead.
                self.append_line(Line::lost(lost)).await?;
            }
        }
        // From here on, a replica resuming in the middle of this chunk must
        // not note the same loss again: progress saved while the chunk is
        // shown already carries the warning.
        self.saved.more.next_seq = expected.max(chunk.seq);
        if chunk.seq + 1 > expected {
            self.append_text(&chunk.text).await?;
        }
        self.saved.more.next_seq = self.saved.more.next_seq.max(chunk.seq + 1);
        Ok(())
    }

    async fn append_text(&mut self, text: &str) -> Result<(), Stop> {
        if self.live_output_ended() || text.is_empty() {
            // Read back for the file at the end.
            return Ok(());
        }
        if self.saved.more.pages >= self.max_pages {
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
        let mut offset = 0;
        while offset < text.len() {
            let limit = self.limit();
            let room = self.page.room(limit);
            if room == 0 {
                self.turn_page(base + offset).await?;
                if self.live_output_ended() {
                    return Ok(());
                }
                continue;
            }
            let rest = &text[offset..];
            let take = fit_prefix(rest, room, self.page.chars, limit);
            if take == 0 {
                // Not even one character fits (a 2-unit character in the
                // last unit of room): the page is full.
                self.turn_page(base + offset).await?;
                if self.live_output_ended() {
                    return Ok(());
                }
                continue;
            }
            self.page.push_text(&rest[..take]);
            offset += take;
            if offset < text.len() {
                self.turn_page(base + offset).await?;
                if self.live_output_ended() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Appends a line of its own (a notice, a lost-output warning), starting
    /// a new page if it does not fit on this one.
    async fn append_line(&mut self, line: Line) -> Result<(), Stop> {
        let line = line.fit(self.page_chars / 2);
        if self.live_output_ended() {
            return self.send_alone(line).await;
        }
        let mut lead = usize::from(!self.page.ends_with_newline());
        if lead + line.chars + 1 > self.page.room(self.limit()) && !self.page.is_empty() {
            self.turn_page(self.saved.skip).await?;
            if self.live_output_ended() {
                return self.send_alone(line).await;
            }
            lead = 0;
        }
        if lead == 1 {
            self.page.push_text("\n");
        }
        self.page.push_html(&line.html, line.chars);
        self.page.push_text("\n");
        Ok(())
    }

    /// Past the live pages, a line that is not output is sent as a message
    /// of its own: the last live page is full.
    async fn send_alone(&mut self, line: Line) -> Result<(), Stop> {
        self.send_now(self.chat(), line.html, None).await;
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

    /// [`Pager::turn_page`] regardless of the budget.
    async fn next_page(&mut self, consumed: usize) -> Result<(), Stop> {
        self.deliver_page(None).await?;
        self.page = Page::default();
        self.saved.more.pages += 1;
        self.saved.skip = consumed;
        self.save(true).await
    }

    /// The page budget is spent: the current page ends with a line saying
    /// that the whole output will come as a file, and keeps the Stop button
    /// (the session still runs); output is no longer shown live.
    async fn enter_overflow(&mut self) -> Result<(), Stop> {
        let line = self.overflow_line();
        if !self.page.ends_with_newline() {
            self.page.push_text("\n");
        }
        self.page.push_html(&line.html, line.chars);
        self.saved.more.overflow = true;
        tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, pages = self.saved.more.pages + 1, "page budget spent: the output will be attached as a file");
        self.deliver_page(Some(self.keyboard.clone())).await?;
        self.save(true).await
    }

    /// Telegram refused a page of output (or could not be reached for it):
    /// live output ends here, the user is told, and the whole output is
    /// attached when the session ends.
    async fn output_not_shown(&mut self, why: &str) -> Result<(), Stop> {
        if self.saved.more.overflow {
            return Ok(());
        }
        self.saved.more.overflow = true;
        self.saved.more.refused = true;
        tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, why, "output could not be shown live; it will be attached as a file");
        let line = Line::notice(&format!(
            "⚠️ Part of the output could not be shown here ({why}). The whole output will be attached as a file when the session ends."
        ));
        self.page = Page::default();
        if let Some(id) = self
            .send_now(self.chat(), line.html.clone(), Some(self.keyboard.clone()))
            .await
        {
            self.page = Page {
                message: id,
                html: line.html,
                chars: line.chars,
            };
        }
        self.save(true).await
    }

    /// Shows the current page as it is now, with `keyboard`, and waits until
    /// Telegram has it. A page that cannot be shown is repaired: sent anew
    /// when its message is gone, else said and attached at the end.
    async fn deliver_page(&mut self, keyboard: Option<InlineKeyboard>) -> Result<(), Stop> {
        if self.muted {
            return Ok(());
        }
        if !page::is_visible(&self.page.html) {
            // Nothing a user could see (Telegram would refuse it as empty).
            // A message that shows something else must not keep a button.
            if self.page.message != 0 && keyboard.is_none() {
                let html = page::placeholder(&self.saved.agent_name);
                let (chat, msg) = (self.chat(), self.page.message);
                let _ = self.edit_now(chat, msg, html, None).await;
            }
            return Ok(());
        }
        if let Err(why) = page::check_fits(&self.page.html, self.page_chars) {
            // A bug in the paging; never sent as it is.
            tracing::error!(session = %self.saved.session_id, why, "a page does not fit Telegram's rules");
            if self.page.message != 0 {
                // Its message keeps what it showed, without the button.
                let (chat, msg) = (self.chat(), self.page.message);
                let html = self.saved_page_html();
                let _ = self.edit_now(chat, msg, html, None).await;
            }
            self.page.message = 0;
            return self.output_not_shown("it broke Telegram's limits").await;
        }
        let (chat, html) = (self.chat(), self.page.html.clone());
        if self.page.message == 0 {
            return match self.send_now(chat, html, keyboard).await {
                Some(id) => {
                    self.page.message = id;
                    Ok(())
                }
                None if self.muted => Ok(()),
                None => self.output_not_shown("Telegram did not accept it").await,
            };
        }
        let msg = self.page.message;
        match self
            .edit_now(chat, msg, html.clone(), keyboard.clone())
            .await
        {
            Shown::Yes => Ok(()),
            Shown::No if self.muted => Ok(()),
            Shown::No => self.output_not_shown("Telegram did not accept it").await,
        }
    }

    /// Sends a message, retrying while Telegram is unreachable. `None` if it
    /// could not be sent.
    async fn send_now(
        &mut self,
        chat: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Option<i64> {
        self.send_tries(chat, html, keyboard, SEND_ATTEMPTS).await
    }

    async fn send_tries(
        &mut self,
        chat: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
        attempts: u32,
    ) -> Option<i64> {
        if self.muted {
            return None;
        }
        for attempt in 1..=attempts {
            match self.io.send(chat, html.clone(), keyboard.clone()).await {
                Ok(id) => return Some(id),
                Err(e) if is_blocked(&e) => {
                    self.mute(&e);
                    return None;
                }
                Err(TelegramError::Api { code, description }) => {
                    tracing::error!(session = %self.saved.session_id, code, %description, "Telegram refused a message");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(session = %self.saved.session_id, attempt, error = %e, "sending a message failed");
                    if attempt < attempts
                        && self
                            .io
                            .pause(Duration::from_secs(1 << attempt.min(4)))
                            .await
                            .is_err()
                    {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// Edits a message and waits; a message that is gone is sent anew (and
    /// becomes the page's message when it was the page's).
    async fn edit_now(
        &mut self,
        chat: i64,
        message: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Shown {
        if self.muted {
            return Shown::No;
        }
        for attempt in 1..=SEND_ATTEMPTS {
            match self
                .io
                .edit(chat, message, html.clone(), keyboard.clone())
                .await
            {
                Ok(()) => return Shown::Yes,
                Err(e) if is_blocked(&e) => {
                    self.mute(&e);
                    return Shown::No;
                }
                Err(TelegramError::Api { description, .. })
                    if description.contains("message to edit not found")
                        || description.contains("message can't be edited") =>
                {
                    // The user deleted it: show it again below.
                    tracing::warn!(session = %self.saved.session_id, message, "a message to edit is gone; sending it anew");
                    return match self.send_now(chat, html, keyboard).await {
                        Some(id) => {
                            if message == self.page.message {
                                self.page.message = id;
                            }
                            Shown::Yes
                        }
                        None => Shown::No,
                    };
                }
                Err(TelegramError::Api { code, description }) => {
                    tracing::error!(session = %self.saved.session_id, code, %description, "Telegram refused an edit");
                    return Shown::No;
                }
                Err(e) => {
                    tracing::warn!(session = %self.saved.session_id, attempt, error = %e, "editing a message failed");
                    if attempt < SEND_ATTEMPTS
                        && self
                            .io
                            .pause(Duration::from_secs(1 << attempt.min(4)))
                            .await
                            .is_err()
                    {
                        return Shown::No;
                    }
                }
            }
        }
        Shown::No
    }

    fn mute(&mut self, e: &TelegramError) {
        tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, error = %e, "the user blocked the bot: nothing more can be shown in this chat");
        self.muted = true;
    }

    /// Ends the current page where it is, so that a message sent now (an
    /// approval request) comes after everything shown so far, and output
    /// after it goes on a new page below it.
    async fn break_page(&mut self) -> Result<(), Stop> {
        if self.live_output_ended() || self.muted {
            // Past the budget the last live page keeps its line and button.
            return Ok(());
        }
        if self.page.is_empty() || !page::is_visible(&self.page.html) {
            if self.page.message != 0 {
                // The placeholder stays, without its Stop button: the page
                // that follows the request carries it.
                let html = page::placeholder(&self.saved.agent_name);
                let (chat, msg) = (self.chat(), self.page.message);
                let _ = self.edit_now(chat, msg, html, None).await;
            }
            self.page = Page::default();
            return Ok(());
        }
        self.deliver_page(None).await?;
        if self.live_output_ended() {
            return Ok(());
        }
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
        let chat = self.approval_chat();
        if chat == self.chat() {
            self.break_page().await?;
        }
        let msg = self
            .send_now(chat, html.clone(), keyboard)
            .await
            .unwrap_or(0);
        if msg == 0 && !self.muted {
            // The runner waits for an answer nobody can give: say so where
            // the output goes; the request is denied when it times out.
            self.append_line(Line::notice(&format!(
                "⚠️ An approval request ({}) could not be shown; it is denied when it times out.",
                a.tool
            )))
            .await?;
        }
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
            return self.append_line(line).await;
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
        if msg != 0 {
            let chat = self.approval_chat();
            if let Shown::No = self.edit_now(chat, msg, html, None).await {
                tracing::warn!(session = %self.saved.session_id, request = %r.request_id, "an approval's verdict could not be shown");
            }
        }
        tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, request = %r.request_id, allow = r.allow, "approval resolved");
        Ok(())
    }

    /// Approval messages still showing their buttons when the session ends
    /// (their verdict never arrived): they lose them and say why.
    async fn close_open_approvals(&mut self) {
        let chat = self.approval_chat();
        let open: Vec<(String, i64, String)> = self
            .saved
            .more
            .approvals
            .iter()
            .filter(|a| a.resolved.is_none() && a.msg != 0)
            .map(|a| (a.rid.clone(), a.msg, a.html.clone()))
            .collect();
        for (rid, msg, html) in open {
            let closed = page::approval_resolved_html(&html, false, "the session ended");
            let _ = self.edit_now(chat, msg, closed.clone(), None).await;
            if let Some(a) = self.saved.more.approval_mut(&rid) {
                a.resolved = Some(closed);
            }
        }
    }

    /// The session's end: the last page without its button, then the status
    /// (on the page, or with the output file as the last message).
    async fn finish(&mut self, done: &DonePayload, entry_id: &str) -> Result<(), Stop> {
        self.check_failed_edit().await?;
        self.close_open_approvals().await;
        let status = Line::status(done);
        let withheld = (done.withheld_bytes > 0)
            .then(|| Line::withheld(done.withheld_bytes, &self.saved.agent_name));
        if self.saved.more.overflow {
            // The last live page loses its Stop button; the status comes with
            // the file, the last message of the session. (A replica that
            // finishes the session again after the file was sent only makes
            // sure of the button: nothing may come after the file.)
            if self.saved.more.file_sent {
                self.drop_button().await;
                return Ok(());
            }
            self.deliver_page(None).await?;
            self.send_output_file(&status, withheld.as_ref(), done, entry_id)
                .await?;
            return Ok(());
        }
        // Chunks the daemon wrote after the last one that arrived.
        let missing = done.chunks.saturating_sub(self.saved.more.next_seq);
        let mut lines = Vec::new();
        if missing > 0 {
            tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, missing, "the last output chunks were lost");
            lines.push(Line::lost(missing));
        }
        lines.extend(withheld);
        lines.push(status);
        let end = Line::join(&lines).fit(self.page_chars);
        // The status goes under the output after a line break of its own,
        // so that the output's last line break is kept as it was.
        if !self.page.is_empty() && 1 + end.chars > self.page.room(self.page_chars) {
            self.next_page(self.saved.skip).await?;
        }
        if !self.page.is_empty() {
            self.page.push_text("\n");
        }
        self.page.push_html(&end.html, end.chars);
        self.deliver_final_page().await
    }

    /// The current page's message without its button (as stored); a message
    /// that is gone stays gone.
    async fn drop_button(&mut self) {
        if self.page.message == 0 || self.muted {
            return;
        }
        let (chat, msg, html) = (self.chat(), self.page.message, self.saved_page_html());
        if let Err(e) = self.io.edit(chat, msg, html, None).await {
            tracing::warn!(session = %self.saved.session_id, error = %e, "removing the Stop button of a finished session");
        }
    }

    /// The page with the status: retried longer than others, since nothing
    /// comes after it; if its message cannot be edited, sent anew.
    async fn deliver_final_page(&mut self) -> Result<(), Stop> {
        if self.muted {
            return Ok(());
        }
        let (chat, html) = (self.chat(), self.page.html.clone());
        if self.page.message != 0 {
            let msg = self.page.message;
            if let Shown::Yes = self.edit_now(chat, msg, html.clone(), None).await {
                return Ok(());
            }
            if self.muted {
                return Ok(());
            }
            // The old message keeps what it showed, without its button.
            let _ = self.io.edit(chat, msg, self.saved_page_html(), None).await;
        }
        match self.send_tries(chat, html, None, FINAL_ATTEMPTS).await {
            Some(id) => {
                self.page.message = id;
                Ok(())
            }
            None => {
                tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, "the status of a session could not be shown");
                Ok(())
            }
        }
    }

    /// The current page's last stored text, or the placeholder.
    fn saved_page_html(&self) -> String {
        if page::is_visible(&self.saved.html) {
            self.saved.html.clone()
        } else {
            page::placeholder(&self.saved.agent_name)
        }
    }

    /// Re-reads the whole stream and sends it with the status as its
    /// caption; if that is impossible, the status is sent as a message that
    /// says why the file is missing.
    async fn send_output_file(
        &mut self,
        status: &Line,
        withheld: Option<&Line>,
        done: &DonePayload,
        entry_id: &str,
    ) -> Result<(), Stop> {
        if self.muted {
            return Ok(());
        }
        let status_html = match withheld {
            Some(w) => format!("{}\n{}", w.html, status.html),
            None => status.html.clone(),
        };
        let file = match self.io.output_file(done, entry_id).await {
            Ok(file) => file,
            Err(e) => {
                tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, error = %e, "assembling the output file");
                let html = format!(
                    "<i>⚠️ The whole output could not be read back to attach it.</i>\n{status_html}"
                );
                self.send_tries(self.chat(), html, None, FINAL_ATTEMPTS)
                    .await;
                return self.file_done().await;
            }
        };
        let cut = (file.written < file.total).then_some((file.written, file.total));
        let caption = page::file_caption(&status_html, file.lost, cut);
        if file.written == 0 {
            // Telegram refuses empty files; nothing of the output is left.
            let html = format!("<i>⚠️ No output is left to attach.</i>\n{caption}");
            self.send_tries(self.chat(), html, None, FINAL_ATTEMPTS)
                .await;
        } else {
            let document = Document {
                file_name: format!("output-{}.txt", self.saved.session_id),
                caption: Some(caption.clone()),
                source: file.source.clone(),
            };
            if let Err(e) = self.send_document(document).await {
                tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, error = %e, "sending the output file");
                if !self.muted {
                    let html =
                        format!("<i>⚠️ Telegram did not accept the output file.</i>\n{caption}");
                    self.send_tries(self.chat(), html, None, FINAL_ATTEMPTS)
                        .await;
                }
            } else {
                tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, bytes = file.written, total = file.total, lost = file.lost, "output file sent");
            }
        }
        drop(file);
        self.file_done().await
    }

    async fn file_done(&mut self) -> Result<(), Stop> {
        self.saved.more.file_sent = true;
        self.save(true).await
    }

    /// Sends a document, retrying while Telegram is unreachable (a second
    /// copy of the file is better than none).
    async fn send_document(&mut self, document: Document) -> Result<i64, TelegramError> {
        let chat = self.chat();
        let mut attempt = 1;
        loop {
            match self.io.send_document(chat, document.clone()).await {
                Err(e) if is_blocked(&e) => {
                    self.mute(&e);
                    return Err(e);
                }
                Err(TelegramError::Transport(e)) if attempt < FINAL_ATTEMPTS => {
                    tracing::warn!(session = %self.saved.session_id, attempt, error = %e, "sending the output file failed");
                    if self
                        .io
                        .pause(Duration::from_secs(1 << attempt.min(4)))
                        .await
                        .is_err()
                    {
                        return Err(TelegramError::Transport(e));
                    }
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Smallest page the pager works with: every line it writes of its own
/// (at most `page::MAX_LINE_CHARS` plus a few) must fit on one page.
pub(super) const MIN_PAGE_CHARS: usize = 64;

/// 403 "Forbidden: bot was blocked by the user" and the like: the chat is
/// closed to the bot.
fn is_blocked(e: &TelegramError) -> bool {
    matches!(e, TelegramError::Api { code: 403, .. })
}

#[cfg(test)]
mod tests;
