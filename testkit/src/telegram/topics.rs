//! Forum topics: `createForumTopic`, `editForumTopic`, `closeForumTopic`,
//! `reopenForumTopic`, `deleteForumTopic`, and `message_thread_id` on sends.
//!
//! Which chats are forums is the test's choice, as it is the user's on
//! Telegram: a private chat is one once the bot's forum topic mode is on
//! ([`FakeTelegram::enable_private_topics`], then `getMe` answers
//! `has_topics_enabled: true`), a supergroup once the test makes it one
//! ([`FakeTelegram::make_forum`], with or without the bot's
//! `can_manage_topics` right). A topic's id is the id of the service
//! message that created it, as in Telegram.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::params::string_param;
use super::rules::{Refusal, RuleId};
use super::{FakeTelegram, Inner, as_i64, lock};

/// Telegram's limit on a topic's name, in characters (TDLib cuts a longer
/// one there).
pub const MAX_TOPIC_NAME_CHARS: usize = 128;

/// The default icon colour Telegram gives a topic created without one
/// (0x6FB9F0).
const DEFAULT_ICON_COLOR: i64 = 0x6F_B9_F0;

/// A forum topic as it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTopic {
    pub chat_id: i64,
    pub message_thread_id: i64,
    pub name: String,
    pub icon_color: i64,
    pub closed: bool,
    /// Deleted (by the bot or by the user): sends into it are refused.
    pub deleted: bool,
    /// How many times `editForumTopic` renamed it.
    pub renames: u32,
}

/// What the fake knows about forums.
#[derive(Default)]
pub(super) struct Topics {
    /// The bot's forum topic mode in private chats (`has_topics_enabled`).
    pub private_enabled: bool,
    /// Forum supergroups, with whether the bot may manage topics there.
    pub forums: HashMap<i64, bool>,
    /// Every topic ever created, oldest first.
    pub all: Vec<FakeTopic>,
}

impl Topics {
    fn is_forum(&self, chat_id: i64) -> bool {
        if chat_id > 0 {
            self.private_enabled
        } else {
            self.forums.contains_key(&chat_id)
        }
    }

    fn live_mut(&mut self, chat_id: i64, thread: i64) -> Result<&mut FakeTopic, Refusal> {
        self.all
            .iter_mut()
            .find(|t| t.chat_id == chat_id && t.message_thread_id == thread && !t.deleted)
            .ok_or_else(|| Refusal::of(RuleId::TopicIdInvalid))
    }
}

impl FakeTelegram {
    /// The user turned on the bot's forum topic mode (BotFather): private
    /// chats with the bot have topics, and `getMe` says
    /// `has_topics_enabled: true`.
    pub fn enable_private_topics(&self) {
        lock(&self.inner).topics.private_enabled = true;
    }

    /// Supergroup `chat_id` (negative) is a forum; the bot is an
    /// administrator there with `can_manage_topics` when `can_manage`.
    pub fn make_forum(&self, chat_id: i64, can_manage: bool) {
        lock(&self.inner).topics.forums.insert(chat_id, can_manage);
    }

    /// The topics of a chat, deleted ones included, oldest first.
    pub fn topics(&self, chat_id: i64) -> Vec<FakeTopic> {
        lock(&self.inner)
            .topics
            .all
            .iter()
            .filter(|t| t.chat_id == chat_id)
            .cloned()
            .collect()
    }

    /// The user deletes a topic in the app: it and its messages are gone.
    pub fn user_deletes_topic(&self, chat_id: i64, thread: i64) {
        let mut state = lock(&self.inner);
        delete(&mut state, chat_id, thread);
    }

    /// The messages of one topic of a chat, oldest first.
    pub fn messages_in_topic(&self, chat_id: i64, thread: i64) -> Vec<super::FakeMessage> {
        self.messages(chat_id)
            .into_iter()
            .filter(|m| m.thread == Some(thread))
            .collect()
    }
}

fn delete(state: &mut Inner, chat_id: i64, thread: i64) {
    for t in state
        .topics
        .all
        .iter_mut()
        .filter(|t| t.chat_id == chat_id && t.message_thread_id == thread)
    {
        t.deleted = true;
    }
    if let Some(chat) = state.chats.get_mut(&chat_id) {
        chat.messages.retain(|m| m.thread != Some(thread));
    }
}

/// `has_topics_enabled` for `getMe`.
pub(super) fn private_enabled(state: &Inner) -> bool {
    state.topics.private_enabled
}

/// The topic a send goes to (`message_thread_id`), checked: `None` for
/// the chat's main thread.
pub(super) fn send_thread(
    state: &Inner,
    chat_id: i64,
    body: &Value,
) -> Result<Option<i64>, Refusal> {
    let Some(thread) = body.get("message_thread_id").and_then(as_i64) else {
        return Ok(None);
    };
    let topic = state
        .topics
        .all
        .iter()
        .find(|t| t.chat_id == chat_id && t.message_thread_id == thread && !t.deleted)
        .ok_or_else(|| Refusal::of(RuleId::ThreadNotFound))?;
    if topic.closed {
        return Err(Refusal::of(RuleId::TopicClosed));
    }
    Ok(Some(thread))
}

/// `chatAction`'s check: an existing topic, closed or not.
pub(super) fn action_thread(state: &Inner, chat_id: i64, body: &Value) -> Result<(), Refusal> {
    match send_thread(state, chat_id, body) {
        Err(r) if r.rule == Some(RuleId::TopicClosed) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// A name as Telegram keeps it: trimmed, cut at 128 characters, never
/// empty.
fn topic_name(body: &Value) -> Result<String, Refusal> {
    let name = string_param(body, "name").unwrap_or_default();
    let name: String = name.trim().chars().take(MAX_TOPIC_NAME_CHARS).collect();
    let name = name.trim_end().to_string();
    if name.is_empty() {
        return Err(Refusal::of(RuleId::TopicTitleEmpty));
    }
    Ok(name)
}

fn require_thread(body: &Value) -> Result<i64, Refusal> {
    body.get("message_thread_id")
        .and_then(as_i64)
        .ok_or_else(|| Refusal::of(RuleId::TopicIdInvalid))
}

/// The forum-topic methods; `None` for any other method.
pub(super) fn dispatch(
    state: &mut Inner,
    method: &str,
    body: &Value,
    chat_id: impl Fn() -> Result<i64, Refusal>,
) -> Option<Result<Value, Refusal>> {
    let result = match method {
        "createForumTopic" => create(state, body, chat_id),
        "editForumTopic" => (|| {
            let chat_id = chat_id()?;
            let thread = require_thread(body)?;
            let name = match body.get("name") {
                Some(_) => Some(topic_name(body)?),
                None => None,
            };
            let topic = state.topics.live_mut(chat_id, thread)?;
            match name {
                Some(name) if name != topic.name => {
                    topic.name = name;
                    topic.renames += 1;
                    Ok(json!(true))
                }
                _ => Err(Refusal::of(RuleId::TopicNotModified)),
            }
        })(),
        "closeForumTopic" | "reopenForumTopic" => (|| {
            let chat_id = chat_id()?;
            let thread = require_thread(body)?;
            let topic = state.topics.live_mut(chat_id, thread)?;
            let close = method == "closeForumTopic";
            if topic.closed == close {
                return Err(Refusal::of(RuleId::TopicNotModified));
            }
            topic.closed = close;
            Ok(json!(true))
        })(),
        "deleteForumTopic" => (|| {
            let chat_id = chat_id()?;
            let thread = require_thread(body)?;
            state.topics.live_mut(chat_id, thread)?;
            delete(state, chat_id, thread);
            Ok(json!(true))
        })(),
        _ => return None,
    };
    Some(result)
}

fn create(
    state: &mut Inner,
    body: &Value,
    chat_id: impl Fn() -> Result<i64, Refusal>,
) -> Result<Value, Refusal> {
    let chat_id = chat_id()?;
    if !state.topics.is_forum(chat_id) {
        return Err(Refusal::of(RuleId::NotAForum));
    }
    if chat_id < 0 && state.topics.forums.get(&chat_id) != Some(&true) {
        return Err(Refusal::of(RuleId::TopicRightsMissing));
    }
    let name = topic_name(body)?;
    let icon_color = body
        .get("icon_color")
        .and_then(as_i64)
        .unwrap_or(DEFAULT_ICON_COLOR);
    // The topic's id is that of the service message announcing it.
    let chat = state.chats.entry(chat_id).or_default();
    chat.next_id += 1;
    let thread = chat.next_id;
    state.topics.all.push(FakeTopic {
        chat_id,
        message_thread_id: thread,
        name: name.clone(),
        icon_color,
        closed: false,
        deleted: false,
        renames: 0,
    });
    Ok(json!({"message_thread_id": thread, "name": name, "icon_color": icon_color}))
}
