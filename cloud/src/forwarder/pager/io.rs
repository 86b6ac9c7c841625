//! The pager's window on the world: everything it asks of Telegram and
//! Redis, as a trait, so the property tests can put a strict model of
//! Telegram behind it and the forwarder the outbox and Redis.

use std::time::Duration;

use remoteagent_proto::events::DonePayload;
use remoteagent_proto::files::Attachment;

use super::super::store::SavedState;
use crate::blob_fetch::FetchError;
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

/// A file of a `file` event, fetched and checked, ready to send.
pub(in crate::forwarder) struct FetchedFile {
    pub source: DocumentSource,
    /// Keep the temporary file, and the session's lock refreshed, until it
    /// was sent.
    pub _guards: Vec<Box<dyn Send>>,
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
    /// Shows `html` as draft `draft_id` of a private chat
    /// (`sendMessageDraft`) and waits for Telegram's answer; never retried
    /// (a draft is only a preview of text persisted later).
    async fn draft(&mut self, chat: i64, draft_id: i64, html: String) -> Result<(), TelegramError>;
    /// Deletes a message and waits.
    async fn delete(&mut self, chat: i64, message: i64) -> Result<(), TelegramError>;
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
    /// The file a `file` event describes, from its blob, checked against
    /// the event (`crate::blob_fetch`).
    async fn fetch_file(&mut self, file: &Attachment) -> Result<FetchedFile, FetchError>;
    /// Deletes a file's blob once it was sent or can never be (only keys
    /// of the session's agent; a failure is left to the blob's TTL).
    async fn drop_blob(&mut self, key: &str);
    /// Stores the progress (`None`: only keeps the session's lock).
    async fn save(&mut self, state: Option<&SavedState>) -> Result<(), Stop>;
    /// Waits before another attempt (cancellable).
    async fn pause(&mut self, d: Duration) -> Result<(), Stop>;
}
