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
//! * the status is the last thing shown on the session's output (and, as
//!   a new message replying to it, the "ping" that makes the phone
//!   notify), and no message of the session keeps a button once it ended.
//!
//! The only thing it cannot tell the user is that they blocked the bot.

//!
//! This file is the paging state machine (what goes on which page, page
//! turns, the page budget, the end of a session); `delivery.rs` gets each
//! message to Telegram (retries, repairs, the output file), `approvals.rs`
//! shows approval requests and their verdicts, `files.rs` sends the files
//! of `file` events, `ping.rs` sends the session's end as a new message,
//! `card.rs` the diff card of a run that changed files,
//! `draft.rs` shows the current page as a live draft (`STREAM_MODE=draft`),
//! and `io.rs` is the interface to the world.

mod approvals;
mod card;
mod delivery;
mod draft;
mod files;
mod io;
mod ping;
mod questions;
mod shown;

use remoteagent_proto::events::{ChunkPayload, DonePayload, OutputEvent};

pub(super) use self::io::{FetchedFile, Io, OutputFile, Stop};
use super::page::{self, Line, Page};
use super::store::SavedState;
use crate::telegram::InlineKeyboard;
use crate::telegram::render::fit_prefix;

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

    /// The user who sent the prompt: their private chat is where approval
    /// requests go (a private chat's id is its user's id).
    fn owner(&self) -> i64 {
        self.approval_chat()
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
    /// may have been lost with the replica that made it); not once it
    /// ended (the page shows the status, without a button).
    pub fn resumed(&mut self) {
        if self.page.message != 0
            && page::is_visible(&self.page.html)
            && !self.muted
            && !self.saved.more.file_sent
            && !self.saved.more.pinged
        {
            let (chat, msg) = (self.chat(), self.page.message);
            self.io
                .edit_soon(chat, msg, self.page.html.clone(), self.keyboard.clone());
        }
    }

    /// Sends the placeholder of a new session.
    pub async fn placeholder(&mut self) {
        if self.saved.more.drafts {
            return self.control_placeholder().await;
        }
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
        if !self.saved.more.file_pending.is_empty() {
            self.file_interrupted().await?;
        }
        match event {
            OutputEvent::Chunk(chunk) => self.apply_chunk(&chunk).await?,
            OutputEvent::Notice(n) => self.append_line(Line::notice(&n.text)).await?,
            OutputEvent::File(f) => self.deliver_file(&f, entry_id).await?,
            OutputEvent::ApprovalRequest(a) => self.show_approval(&a).await?,
            OutputEvent::ApprovalResolved(r) => self.resolve_approval(&r).await?,
            OutputEvent::Done(done) => {
                self.finish(&done, entry_id).await?;
                self.send_card().await?;
                return Ok(Some(done));
            }
            // What the run changed: the diff card, after the end (`card.rs`).
            OutputEvent::Changes(c) => self.keep_changes(c),
            OutputEvent::Started(s) => {
                self.saved.more.mode = s.mode.map(|m| m.to_string()).unwrap_or_default();
            }
            // `sessions` and `rules` answer `/sessions` and `/rules` on a
            // stream of their own (`bot/sessions`); `checkpoint_result`
            // answers a card's button on one too (`bot/checkpoints`).
            OutputEvent::Sessions(_)
            | OutputEvent::Rules(_)
            | OutputEvent::CheckpointResult(_)
            | OutputEvent::Unknown => {}
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
        if self.drafting() && self.flush_draft().await {
            return self.save(true).await;
        }
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
            "⚠️ Part of the output could not be shown here ({why}). The whole output will be attached as a file when the run ends."
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

    /// The session's end: the last page without its button, then the status
    /// (on the page, or with the output file as the last message), then
    /// the ping (a new message replying to it).
    async fn finish(&mut self, done: &DonePayload, entry_id: &str) -> Result<(), Stop> {
        self.check_failed_edit().await?;
        self.close_open_approvals().await;
        let status = Line::status(done).in_mode(&self.saved.more.mode);
        let withheld = (done.withheld_bytes > 0)
            .then(|| Line::withheld(done.withheld_bytes, &self.saved.agent_name));
        if self.saved.more.overflow {
            // The last live page loses its Stop button; the status comes with
            // the file, the last message of the session's output. (A replica
            // that finishes the session again after the file was sent only
            // makes sure of the button: only the ping may come after the
            // file.)
            if self.saved.more.file_sent {
                self.drop_button().await;
            } else {
                self.deliver_page(None).await?;
                self.send_output_file(&status, withheld.as_ref(), done, entry_id)
                    .await?;
            }
            self.close_control().await?;
            return self.ping(done).await;
        }
        if self.saved.more.pinged {
            // Finished again by a replica that took over after the status
            // and the ping went out: the stored page shows the status.
            self.drop_button().await;
            return self.close_control().await;
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
        self.deliver_final_page().await?;
        self.close_control().await?;
        self.ping(done).await
    }
}

/// Smallest page the pager works with: every line it writes of its own
/// (at most `page::MAX_LINE_CHARS` plus a few) must fit on one page.
pub(super) const MIN_PAGE_CHARS: usize = 64;

#[cfg(test)]
mod tests;
