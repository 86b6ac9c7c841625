//! The HTTP side of the fake: each request is checked with the pure rules
//! of [`super::rules`], applied to the store and logged, all under one lock.
//!
//! Why one lock: a test that sees a message (`messages`) must also see the
//! call that made it (`calls_of`). Applying a call under one lock and
//! logging it under another let a test read the message and then a call
//! log without it (issue 11, item 7).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::answer::{finish, take_failure};
use super::checks::{
    ReplyTo, check_caption, check_edit, check_message_text, check_upload, parse_reply_markup,
    parse_reply_parameters,
};
use super::params::{Files, read_params, string_param};
use super::rules::{BLOCKABLE_METHODS, Refusal, RuleId};
use super::{
    BOT_ID, BOT_USERNAME, FAKE_TOKEN, FakeDocument, FakeMessage, Inner, Shared, as_i64, lock,
    now_secs,
};

pub(super) async fn handle(State(inner): State<Shared>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/file/bot") {
        return super::files::download(&inner, rest);
    }
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let method = method.to_string();
    let token_ok = token == FAKE_TOKEN;
    // The body is read before the lock is taken: it may be 50 MB.
    let params = read_params(req).await;
    let (status, response) = match params {
        // A long poll waits, so it cannot hold the lock throughout.
        Ok((body, _)) if token_ok && method == "getUpdates" => {
            super::polling::get_updates(&inner, body).await
        }
        params => {
            let mut state = lock(&inner);
            let (body, outcome) = match params {
                Err(refusal) => (Value::Null, Err(refusal)),
                Ok((body, files)) => {
                    let outcome = if !token_ok {
                        Err(Refusal::of(RuleId::Unauthorized))
                    } else if let Some(refusal) = take_failure(&mut state, &method) {
                        Err(refusal)
                    } else {
                        dispatch(&mut state, &method, &body, files)
                    };
                    (body, outcome)
                }
            };
            finish(&mut state, &method, body, outcome)
        }
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(response)).into_response()
}

fn require_chat(body: &Value) -> Result<i64, Refusal> {
    body.get("chat_id")
        .and_then(as_i64)
        .ok_or_else(|| Refusal::of(RuleId::ChatMissing))
}

fn require_message_id(body: &Value) -> Result<i64, Refusal> {
    body.get("message_id")
        .and_then(as_i64)
        .ok_or_else(|| Refusal::of(RuleId::MessageIdMissing))
}

/// A boolean parameter (`true`, or the text `"true"` of a form body).
fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true) || v.as_str() == Some("true")
}

fn parse_mode(body: &Value) -> Option<&str> {
    body.get("parse_mode").and_then(Value::as_str)
}

fn refuse_if_blocked(state: &Inner, method: &str, chat_id: i64) -> Result<(), Refusal> {
    if BLOCKABLE_METHODS.contains(&method) && state.blocked.contains(&chat_id) {
        return Err(Refusal::of(RuleId::BotBlocked));
    }
    Ok(())
}

fn message_mut(
    state: &mut Inner,
    chat_id: i64,
    message_id: i64,
) -> Result<&mut FakeMessage, Refusal> {
    state
        .chats
        .get_mut(&chat_id)
        .and_then(|c| c.messages.iter_mut().find(|m| m.message_id == message_id))
        .ok_or_else(|| Refusal::of(RuleId::EditTargetNotFound))
}

/// The message a send replies to: `None` when it asked for none, or when
/// the message is gone and `allow_sending_without_reply` was set (the
/// message then goes out as an ordinary one, as Telegram sends it).
fn reply_target(
    state: &Inner,
    chat_id: i64,
    reply: Option<ReplyTo>,
) -> Result<Option<i64>, Refusal> {
    let Some(reply) = reply else {
        return Ok(None);
    };
    let target_chat = reply.chat_id.unwrap_or(chat_id);
    let found = replied_json(state, target_chat, reply.message_id).is_some();
    match found {
        // A reply to another chat's message shows as a quote, not as a
        // reply in this chat.
        true if target_chat == chat_id => Ok(Some(reply.message_id)),
        true => Ok(None),
        // "Always False for replies in another chat".
        false if reply.allow_sending_without_reply && target_chat == chat_id => Ok(None),
        false => Err(Refusal::of(RuleId::ReplyTargetNotFound)),
    }
}

fn bot_json() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "RemoteAgent", "username": BOT_USERNAME})
}

fn chat_json(chat_id: i64) -> Value {
    if chat_id < 0 {
        json!({"id": chat_id, "type": "supergroup", "title": "Test group"})
    } else {
        json!({"id": chat_id, "type": "private", "first_name": "Test"})
    }
}

/// A message as Telegram returns it, with the message it replies to
/// (`reply_to_message`, itself without its own).
fn message_json(state: &Inner, chat_id: i64, m: &FakeMessage) -> Value {
    let mut v = plain_message_json(chat_id, m);
    if let Some(target) = m.reply_to.and_then(|id| replied_json(state, chat_id, id)) {
        v["reply_to_message"] = target;
    }
    v
}

/// A message of the chat that a new one may reply to, as Telegram shows
/// it in `reply_to_message`: a text message, or a document.
fn replied_json(state: &Inner, chat_id: i64, message_id: i64) -> Option<Value> {
    if let Some(m) = state
        .chats
        .get(&chat_id)
        .and_then(|c| c.messages.iter().find(|m| m.message_id == message_id))
    {
        return Some(plain_message_json(chat_id, m));
    }
    let d = state
        .documents
        .iter()
        .find(|d| d.chat_id == chat_id && d.message_id == message_id)?;
    let mut v = json!({
        "message_id": d.message_id,
        "from": bot_json(),
        "chat": chat_json(chat_id),
        "date": now_secs(),
        "document": {"file_name": d.file_name, "file_size": d.size},
    });
    if let Some(caption) = &d.caption {
        v["caption"] = json!(caption);
    }
    Some(v)
}

fn plain_message_json(chat_id: i64, m: &FakeMessage) -> Value {
    let mut v = json!({
        "message_id": m.message_id,
        "from": bot_json(),
        "chat": chat_json(chat_id),
        "date": now_secs(),
        "text": m.text,
    });
    if !m.entities.is_empty() {
        v["entities"] = m.entities.iter().map(|e| e.to_json()).collect();
    }
    if m.edits > 0 {
        v["edit_date"] = json!(now_secs());
    }
    if let Some(markup) = &m.reply_markup {
        v["reply_markup"] = markup.clone();
    }
    if let Some(thread) = m.thread {
        v["message_thread_id"] = json!(thread);
        v["is_topic_message"] = json!(true);
    }
    v
}

/// Answers one call. The order of the checks is the Bot API server's: the
/// text, then `reply_markup`, then the chat and the message, then the block,
/// then "not modified".
fn dispatch(state: &mut Inner, method: &str, body: &Value, files: Files) -> Result<Value, Refusal> {
    match method {
        "getMe" => Ok(json!({
            "id": BOT_ID,
            "is_bot": true,
            "first_name": "RemoteAgent",
            "username": BOT_USERNAME,
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
            "has_topics_enabled": super::topics::private_enabled(state),
        })),
        "sendMessage" => {
            let html = string_param(body, "text").unwrap_or_default();
            let rendered = check_message_text(&html, parse_mode(body))?;
            let reply_markup = parse_reply_markup(body.get("reply_markup"))?;
            let reply = parse_reply_parameters(body)?;
            let chat_id = require_chat(body)?;
            let thread = super::topics::send_thread(state, chat_id, body)?;
            let reply_to = reply_target(state, chat_id, reply)?;
            refuse_if_blocked(state, method, chat_id)?;
            let chat = state.chats.entry(chat_id).or_default();
            chat.next_id += 1;
            let message = FakeMessage {
                message_id: chat.next_id,
                text: rendered.text,
                entities: rendered.entities,
                html,
                reply_markup,
                edits: 0,
                reply_to,
                thread,
            };
            let result = message_json(state, chat_id, &message);
            state
                .chats
                .entry(chat_id)
                .or_default()
                .messages
                .push(message);
            Ok(result)
        }
        "editMessageText" => {
            let html = string_param(body, "text").unwrap_or_default();
            let rendered = check_message_text(&html, parse_mode(body))?;
            let reply_markup = parse_reply_markup(body.get("reply_markup"))?;
            let chat_id = require_chat(body)?;
            let message_id = require_message_id(body)?;
            message_mut(state, chat_id, message_id)?;
            refuse_if_blocked(state, method, chat_id)?;
            let message = message_mut(state, chat_id, message_id)?;
            check_edit(
                (&message.rendered(), message.reply_markup.as_ref()),
                (&rendered, reply_markup.as_ref()),
            )?;
            message.text = rendered.text;
            message.entities = rendered.entities;
            message.html = html;
            message.reply_markup = reply_markup;
            message.edits += 1;
            let message = message.clone();
            Ok(message_json(state, chat_id, &message))
        }
        "editMessageReplyMarkup" => {
            let reply_markup = parse_reply_markup(body.get("reply_markup"))?;
            let chat_id = require_chat(body)?;
            let message_id = require_message_id(body)?;
            message_mut(state, chat_id, message_id)?;
            refuse_if_blocked(state, method, chat_id)?;
            let message = message_mut(state, chat_id, message_id)?;
            let rendered = message.rendered();
            check_edit(
                (&rendered, message.reply_markup.as_ref()),
                (&rendered, reply_markup.as_ref()),
            )?;
            message.reply_markup = reply_markup;
            message.edits += 1;
            let message = message.clone();
            Ok(message_json(state, chat_id, &message))
        }
        "deleteMessage" => {
            let chat_id = require_chat(body)?;
            let message_id = require_message_id(body)?;
            let not_found = || Refusal::of(RuleId::DeleteTargetNotFound);
            let chat = state.chats.get_mut(&chat_id).ok_or_else(not_found)?;
            let before = chat.messages.len();
            chat.messages.retain(|m| m.message_id != message_id);
            if chat.messages.len() == before {
                return Err(not_found());
            }
            Ok(json!(true))
        }
        "sendDocument" => send_document(state, method, body, files),
        "sendMessageDraft" => super::drafts::send_message_draft(state, body),
        "getFile" => super::files::get_file(state, body),
        "sendChatAction" => {
            let chat_id = require_chat(body)?;
            super::topics::action_thread(state, chat_id, body)?;
            refuse_if_blocked(state, method, chat_id)?;
            Ok(json!(true))
        }
        "answerCallbackQuery" => {
            if body
                .get("callback_query_id")
                .is_none_or(|v| v.as_str().is_some_and(str::is_empty))
            {
                return Err(Refusal::of(RuleId::CallbackQueryInvalid));
            }
            Ok(json!(true))
        }
        "setWebhook" => {
            let url = string_param(body, "url").unwrap_or_default();
            let secret = string_param(body, "secret_token");
            state.webhook = if url.is_empty() {
                None
            } else {
                Some((url, secret))
            };
            Ok(json!(true))
        }
        "deleteWebhook" => {
            state.webhook = None;
            if body.get("drop_pending_updates").is_some_and(is_true) {
                state.updates.clear();
            }
            Ok(json!(true))
        }
        _ => super::topics::dispatch(state, method, body, || require_chat(body))
            .unwrap_or(Ok(json!(true))),
    }
}

fn send_document(
    state: &mut Inner,
    method: &str,
    body: &Value,
    mut files: Files,
) -> Result<Value, Refusal> {
    let (file_name, size, uploaded) = match body.get("document") {
        Some(Value::Object(doc)) => (
            doc.get("file_name")
                .and_then(Value::as_str)
                .unwrap_or("document")
                .to_string(),
            doc.get("size").and_then(Value::as_u64).unwrap_or(0) as usize,
            true,
        ),
        Some(Value::String(file_id)) if !file_id.is_empty() => (file_id.clone(), 0, false),
        _ => return Err(Refusal::of(RuleId::DocumentMissing)),
    };
    let bytes = files.remove("document").unwrap_or_default();
    if uploaded && bytes.len() > super::MAX_UPLOAD_BYTES {
        // Refused by the HTTP front before anything else is looked at.
        return Err(Refusal::of(RuleId::FileTooLarge));
    }
    let caption_html = string_param(body, "caption");
    let caption = match &caption_html {
        Some(raw) => check_caption(raw, parse_mode(body))?,
        None => None,
    };
    let reply_markup = parse_reply_markup(body.get("reply_markup"))?;
    let reply = parse_reply_parameters(body)?;
    let chat_id = require_chat(body)?;
    if uploaded {
        check_upload(bytes.len())?;
    }
    let thread = super::topics::send_thread(state, chat_id, body)?;
    let reply_to = reply_target(state, chat_id, reply)?;
    refuse_if_blocked(state, method, chat_id)?;
    let chat = state.chats.entry(chat_id).or_default();
    chat.next_id += 1;
    let message_id = chat.next_id;
    let (caption, caption_entities) = match caption {
        Some(r) => (Some(r.text), r.entities),
        None => (None, Vec::new()),
    };
    let mut result = json!({
        "message_id": message_id,
        "from": bot_json(),
        "chat": chat_json(chat_id),
        "date": now_secs(),
        "document": {
            "file_name": file_name,
            "file_size": size,
            "file_id": format!("doc{message_id}"),
            "file_unique_id": format!("u{message_id}"),
        },
    });
    if let Some(caption) = &caption {
        result["caption"] = json!(caption);
    }
    if !caption_entities.is_empty() {
        result["caption_entities"] = caption_entities.iter().map(|e| e.to_json()).collect();
    }
    if let Some(markup) = &reply_markup {
        result["reply_markup"] = markup.clone();
    }
    if let Some(target) = reply_to.and_then(|id| replied_json(state, chat_id, id)) {
        result["reply_to_message"] = target;
    }
    if let Some(thread) = thread {
        result["message_thread_id"] = json!(thread);
        result["is_topic_message"] = json!(true);
    }
    state.documents.push(FakeDocument {
        chat_id,
        message_id,
        file_name,
        size,
        caption,
        caption_entities,
        caption_html,
        bytes,
        reply_to,
        thread,
    });
    Ok(result)
}
