//! The pager's window on the world: everything it asks of Telegram and
//! Redis, as a trait, so the property tests can put a strict model of
//! Telegram behind it and the forwarder the outbox and Redis.

use std::time::Duration;

use remoteagent_proto::events::DonePayload;

use super::super::store::SavedState;
use crate::telegram::{Document, DocumentSource, InlineKeyboard, TelegramError};

/// Why the forwarding of a session stops early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::forwarder) enum Stop {
    /// This replica was told to stop; the session stays active for others.
    Cancelled,
    /// Another replica owns the session now, or it was finished elsewhere.
    Lost,
}

/// The output file of a session, assembled by the I/O side.
pub(in crate::forwarder) struct OutputFile {
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
pub(in crate::forwarder) trait Io {
    /// Sends a message; its id.
    async fn send(
        &mut self,
        chat: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Result<i64, TelegramError>;
    /// Sends a message that replies to message `reply_to` of the chat (or,
    /// should that one be gone, an ordinary message); its id.
    async fn send_reply(
        &mut self,
        chat: i64,
        html: String,
        reply_to: i64,
    ) -> Result<i64, TelegramError>;
    /// Whether the session's end is also sent as a new message to `user`
    /// (the cloud's `FINAL_NOTIFY` and the user's `/notify`).
    async fn wants_ping(&mut self, user: i64) -> bool;
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
