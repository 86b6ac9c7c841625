//! Telegram Bot API access.
//!
//! All text is sent with `parse_mode = "HTML"`: callers escape user and
//! runner text with [`escape_html`].
//!
//! * [`Telegram`]: the client, real HTTP or console mode.
//! * [`render`]: escaping, visible text, page splitting.
//! * [`outbox`]: the per-bot sender that paces, coalesces and retries.

mod client;
mod console;
pub mod outbox;
pub mod render;

use serde::{Deserialize, Serialize};

pub use client::{
    ALLOWED_UPDATES, Document, DocumentSource, FileInfo, MAX_CAPTION_CHARS, Telegram,
};
pub use outbox::{Outbox, OutboxConfig, Sending};
pub use render::{MAX_MESSAGE_CHARS, escape_html, html_to_text, split_pages};

#[derive(Debug, Clone, thiserror::Error)]
pub enum TelegramError {
    #[error("Telegram API error {code}: {description}")]
    Api { code: u16, description: String },
    #[error("Telegram rate limit: retry after {0} s")]
    RetryAfter(u64),
    #[error("Telegram unreachable: {0}")]
    Transport(String),
}

impl TelegramError {
    /// Telegram's answer to an edit that would not change the message.
    pub fn is_not_modified(&self) -> bool {
        matches!(self, TelegramError::Api { code: 400, description }
            if description.contains("message is not modified"))
    }
}

/// Where a message goes: a chat, and in it a forum topic
/// (`message_thread_id`) or, with `thread: None`, the chat itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChatRef {
    pub chat: i64,
    pub thread: Option<i64>,
}

impl ChatRef {
    /// The chat itself, no topic.
    pub fn flat(chat: i64) -> Self {
        ChatRef { chat, thread: None }
    }
}

impl TelegramError {
    /// Telegram's answer to a send into a topic that no longer exists (the
    /// user deleted it).
    pub fn is_thread_gone(&self) -> bool {
        matches!(self, TelegramError::Api { code: 400, description }
            if description.contains("message thread not found")
                || description.contains("TOPIC_ID_INVALID")
                || description.contains("TOPIC_DELETED"))
    }
}

/// One button under a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineButton {
    pub text: String,
    pub callback_data: String,
}

/// Rows of buttons (`reply_markup.inline_keyboard`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineKeyboard {
    pub inline_keyboard: Vec<Vec<InlineButton>>,
}

impl InlineKeyboard {
    /// A keyboard of one row with one button.
    pub fn single(text: impl Into<String>, callback_data: impl Into<String>) -> Self {
        InlineKeyboard {
            inline_keyboard: vec![vec![InlineButton {
                text: text.into(),
                callback_data: callback_data.into(),
            }]],
        }
    }
}

/// The bot's own account (`getMe`).
#[derive(Debug, Clone, Deserialize)]
pub struct BotUser {
    pub id: i64,
    pub username: Option<String>,
    /// The bot's forum topic mode in private chats (BotFather): private
    /// chats with it have topics.
    #[serde(default)]
    pub has_topics_enabled: bool,
}
