//! `sendMessageDraft`: a partial message streamed to a user while it is
//! being generated (Bot API 9.3, every bot since 9.5). Telegram shows it
//! as an animated, ephemeral preview (about 30 s) that is never stored in
//! the chat: the bot must persist the final text with `sendMessage`. So the
//! fake records each draft shown ([`FakeDraft`]) apart from the chat's
//! messages, and [`super::FakeTelegram::messages`] never contains one.
//!
//! Refusals (see the table in [`super::rules`]): a chat that is not
//! private (`TEXTDRAFT_PEER_INVALID`, observed), a zero or missing
//! `draft_id` (assumed text), the text rules of `sendMessage` except that
//! an empty text is allowed, and the user who blocked the bot.

use serde_json::{Value, json};

use super::checks::check_draft_text;
use super::params::string_param;
use super::rules::{Refusal, RuleId};
use super::{Inner, as_i64};

/// One draft Telegram showed.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDraft {
    pub chat_id: i64,
    /// `message_thread_id`, when one was given.
    pub thread_id: Option<i64>,
    pub draft_id: i64,
    /// The text as the user sees it (HTML parsed, cleaned, trimmed; empty
    /// for the "Thinking…" placeholder).
    pub text: String,
    /// The text as sent.
    pub html: String,
    /// When the fake received it.
    pub at: tokio::time::Instant,
}

/// Whether `chat_id` is a private chat: Telegram gives users positive ids
/// and groups, supergroups and channels negative ones.
pub(super) fn is_private(chat_id: i64) -> bool {
    chat_id > 0
}

pub(super) fn send_message_draft(state: &mut Inner, body: &Value) -> Result<Value, Refusal> {
    let chat_id = body
        .get("chat_id")
        .and_then(as_i64)
        .ok_or_else(|| Refusal::of(RuleId::ChatMissing))?;
    let draft_id = body.get("draft_id").and_then(as_i64).unwrap_or(0);
    if draft_id == 0 {
        return Err(Refusal::of(RuleId::DraftIdInvalid));
    }
    let html = string_param(body, "text").unwrap_or_default();
    let parse_mode = body.get("parse_mode").and_then(Value::as_str);
    let rendered = check_draft_text(&html, parse_mode)?;
    if !is_private(chat_id) || state.no_drafts.contains(&chat_id) {
        return Err(Refusal::of(RuleId::DraftPeerInvalid));
    }
    if state.blocked.contains(&chat_id) {
        return Err(Refusal::of(RuleId::BotBlocked));
    }
    state.drafts.push(FakeDraft {
        chat_id,
        thread_id: body.get("message_thread_id").and_then(as_i64),
        draft_id,
        text: rendered.text,
        html,
        at: tokio::time::Instant::now(),
    });
    Ok(json!(true))
}
