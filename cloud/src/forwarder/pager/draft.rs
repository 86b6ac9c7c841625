//! Live drafts (`STREAM_MODE=draft`, private chats): while a session runs,
//! its current page has no message; it is shown with `sendMessageDraft`,
//! which Telegram animates and does not pace like edits, and persisted with
//! `sendMessage` when it fills (`Pager::turn_page`) or the session ends
//! (`Pager::finish`), exactly as an edited page would end. A draft is an
//! ephemeral preview, so nothing of the output depends on one arriving: a
//! draft lost to a 429 or the network is simply skipped (the next batch
//! shows the page again, and the persisted message carries it all).
//!
//! The Stop button lives on the control message, the placeholder sent when
//! the session starts, above the pages; it is deleted when the session ends
//! (or, should that fail, loses its button and says where the output is).
//!
//! A draft Telegram refuses (any 400: a chat the method is not open to) or
//! a page that got a message of its own (past the page budget, a refused
//! page) ends drafts for the session: `Progress::drafts` is turned off and
//! stored, and the page goes on as edits, from the text the pager holds,
//! so not a byte is lost. When nothing was persisted yet, the control
//! message simply becomes the first page, as in edit mode.

use super::{Io, Pager, Stop};
use crate::forwarder::page;
use crate::telegram::{TelegramError, escape_html};

impl<I: Io> Pager<I> {
    /// Whether the current page is shown as a draft now.
    pub(super) fn drafting(&self) -> bool {
        self.saved.more.drafts && !self.saved.more.overflow && self.page.message == 0 && !self.muted
    }

    /// The draft id of the current page: one per session page (so that a
    /// page's drafts are animated as one), the same on every replica, and
    /// unlikely to be another session's in the same chat. Non-zero, as
    /// Telegram requires.
    pub(super) fn draft_id(&self) -> i64 {
        // FNV-1a over the session id and the page number.
        let mut h: u32 = 0x811c_9dc5;
        let page = self.saved.more.pages.to_le_bytes();
        for b in self.saved.session_id.as_str().bytes().chain(page) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        i64::from((h & 0x7fff_ffff).max(1))
    }

    /// The placeholder of a session shown with drafts: the control message
    /// with the Stop button, not a page.
    pub(super) async fn control_placeholder(&mut self) {
        if self.saved.more.control != 0 {
            return;
        }
        let html = page::placeholder(&self.saved.agent_name);
        if let Some(id) = self
            .send_now(self.chat(), html, Some(self.keyboard.clone()))
            .await
        {
            self.saved.more.control = id;
        }
    }

    /// The end of a batch in draft mode: the page as a draft. `true` when
    /// that was all (shown, skipped, or nothing to show); `false` when
    /// drafts just ended and the page must be shown by the edit path.
    pub(super) async fn flush_draft(&mut self) -> bool {
        if !page::is_visible(&self.page.html) {
            // The control message says the session is at work.
            return true;
        }
        let (chat, id, html) = (self.chat(), self.draft_id(), self.page.html.clone());
        match self.io.draft(chat, id, html).await {
            Ok(()) => true,
            Err(e @ TelegramError::Api { code: 403, .. }) => {
                self.mute(&e);
                true
            }
            Err(TelegramError::Api { code, description }) => {
                tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, code, %description, "Telegram refused a draft; the session goes on with edits");
                self.leave_drafts();
                false
            }
            Err(e) => {
                // A 429 or the network: this preview is skipped, the text
                // stays on the page for the next one and the persisted
                // message.
                tracing::debug!(session = %self.saved.session_id, error = %e, "a draft was skipped");
                true
            }
        }
    }

    /// Drafts end for this session: the page goes on as edits. Before any
    /// page was persisted, the control message becomes the first page.
    pub(super) fn leave_drafts(&mut self) {
        self.saved.more.drafts = false;
        let control = self.saved.more.control;
        if control != 0
            && self.page.message == 0
            && self.saved.more.pages == 0
            && self.saved.more.approvals.is_empty()
        {
            self.page.message = control;
            self.saved.more.control = 0;
        }
    }

    /// The session ended: its control message goes (the pages below it
    /// show everything); one that cannot be deleted loses its button and
    /// says where the output is.
    pub(super) async fn close_control(&mut self) -> Result<(), Stop> {
        let control = self.saved.more.control;
        if control == 0 {
            return Ok(());
        }
        if !self.muted {
            let chat = self.chat();
            if let Err(e) = self.io.delete(chat, control).await {
                tracing::warn!(session = %self.saved.session_id, error = %e, "deleting the control message of a finished session");
                let html = format!(
                    "<i>⏳ {}: the output is in the messages below.</i>",
                    escape_html(&self.saved.agent_name)
                );
                if let Err(e) = self.io.edit(chat, control, html, None).await {
                    tracing::warn!(session = %self.saved.session_id, error = %e, "removing the Stop button of a finished session");
                }
            }
        }
        self.saved.more.control = 0;
        self.save(true).await
    }
}
