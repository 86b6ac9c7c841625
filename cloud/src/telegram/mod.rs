//! Telegram Bot API access. INTERFACE CONTRACT (signatures fixed; bodies by
//! the telegram/forwarder side).
//!
//! All text is sent with `parse_mode = "HTML"`: callers escape user and
//! runner text with [`escape_html`].

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error("Telegram API error {code}: {description}")]
    Api { code: u16, description: String },
    #[error("Telegram rate limit: retry after {0} s")]
    RetryAfter(u64),
    #[error("Telegram unreachable: {0}")]
    Transport(String),
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

/// The bot's own account (`getMe`).
#[derive(Debug, Clone, Deserialize)]
pub struct BotUser {
    pub id: i64,
    pub username: Option<String>,
}

/// Escapes `&`, `<`, `>` for Telegram's HTML parse mode.
pub fn escape_html(text: &str) -> String {
    let _ = text;
    todo!("telegram side")
}

/// A Bot API client: real HTTP (`{api_base}/bot{token}/{method}`) or console
/// mode, which prints outgoing messages instead (local use, the demo).
#[derive(Clone)]
pub struct Telegram {}

impl Telegram {
    pub fn api(api_base: &str, token: &str) -> Self {
        let _ = (api_base, token);
        todo!("telegram side")
    }

    pub fn console() -> Self {
        todo!("telegram side")
    }

    /// Returns the new message's id.
    pub async fn send_message(
        &self,
        chat_id: i64,
        html: &str,
        keyboard: Option<&InlineKeyboard>,
    ) -> Result<i64, TelegramError> {
        let _ = (chat_id, html, keyboard);
        todo!("telegram side")
    }

    pub async fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        html: &str,
        keyboard: Option<&InlineKeyboard>,
    ) -> Result<(), TelegramError> {
        let _ = (chat_id, message_id, html, keyboard);
        todo!("telegram side")
    }

    pub async fn answer_callback_query(
        &self,
        callback_query_id: &str,
        text: Option<&str>,
    ) -> Result<(), TelegramError> {
        let _ = (callback_query_id, text);
        todo!("telegram side")
    }

    pub async fn set_webhook(&self, url: &str, secret_token: &str) -> Result<(), TelegramError> {
        let _ = (url, secret_token);
        todo!("telegram side")
    }

    pub async fn get_me(&self) -> Result<BotUser, TelegramError> {
        todo!("telegram side")
    }
}
