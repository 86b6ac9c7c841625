//! `STREAM_MODE`: how a running session's current page is shown.

use super::ConfigError;
use super::settings::Values;

/// How live output reaches a private chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamMode {
    /// The page is one message, edited at most about once a second.
    #[default]
    Edit,
    /// In private chats the page is shown as a draft (`sendMessageDraft`),
    /// not paced, and persisted with `sendMessage` when it fills or the
    /// session ends; groups, and chats where Telegram refuses a draft, get
    /// edits.
    Draft,
}

impl StreamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Edit => "edit",
            StreamMode::Draft => "draft",
        }
    }
}

/// `STREAM_MODE`, `edit` when unset.
pub(super) fn read(values: &Values) -> Result<StreamMode, ConfigError> {
    match values.get("STREAM_MODE").map(|m| m.to_ascii_lowercase()) {
        None => Ok(StreamMode::default()),
        Some(m) if m == "edit" => Ok(StreamMode::Edit),
        Some(m) if m == "draft" => Ok(StreamMode::Draft),
        Some(m) => Err(values.invalid("STREAM_MODE", format!("expected draft or edit, got {m:?}"))),
    }
}
