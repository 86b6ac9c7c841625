//! The diff card of a run that changed files in its git project: its
//! `changes` event (just before `done`) is kept in the saved progress, and
//! after the end (the status and the ping) the card goes out as a message
//! of its own (`crate::checkpoint_card`). Like the ping, it is recorded
//! (`card_sent`) once sent, so a replica that finishes the session again
//! does not send it twice.

use remoteagent_proto::checkpoints::{CARD_FILES, ChangesPayload};

use super::{Io, Pager, Stop};
use crate::checkpoint_card::{self, CardOf};

/// Attempts at the card while Telegram is unreachable.
const CARD_ATTEMPTS: u32 = 10;

impl<I: Io> Pager<I> {
    /// A `changes` event: kept (with the files the card lists) for the end.
    pub(super) fn keep_changes(&mut self, mut changes: ChangesPayload) {
        changes.files.truncate(CARD_FILES);
        self.saved.more.changes = Some(changes);
    }

    /// Sends the diff card of a finished session, once.
    pub(super) async fn send_card(&mut self) -> Result<(), Stop> {
        let Some(changes) = self.saved.more.changes.as_ref() else {
            return Ok(());
        };
        if self.saved.more.card_sent || self.muted {
            return Ok(());
        }
        let mut html = checkpoint_card::card_html(&self.saved.agent_name, changes, CardOf::Run);
        let keyboard = match checkpoint_card::card_keyboard(&self.saved.session_id) {
            Ok(k) => Some(k),
            Err(line) => {
                html.push('\n');
                html.push_str(line);
                None
            }
        };
        let chat = self.chat();
        match self.send_tries(chat, html, keyboard, CARD_ATTEMPTS).await {
            Some(id) => {
                tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, message = id, "diff card sent")
            }
            None => {
                tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, "the diff card could not be sent; remoteagentctl diff shows the changes")
            }
        }
        self.saved.more.card_sent = true;
        self.save(true).await
    }
}
