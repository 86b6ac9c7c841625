//! Builders of webhook updates shaped like Telegram's.

use serde_json::{Value, json};

fn user(user_id: i64) -> Value {
    json!({
        "id": user_id,
        "is_bot": false,
        "first_name": "Test",
        "username": format!("user{user_id}"),
        "language_code": "en",
    })
}

fn private_chat(chat_id: i64) -> Value {
    json!({"id": chat_id, "type": "private", "first_name": "Test", "username": format!("user{chat_id}")})
}

fn now() -> i64 {
    super::now_secs()
}

/// A text message from `user_id` in private chat `chat_id`; a text that
/// starts with `/` carries a `bot_command` entity, as Telegram sends it.
pub fn text(update_id: i64, user_id: i64, chat_id: i64, text: &str) -> Value {
    let mut message = json!({
        "message_id": update_id,
        "from": user(user_id),
        "chat": private_chat(chat_id),
        "date": now(),
        "text": text,
    });
    if text.starts_with('/') {
        // Entity offsets and lengths are in UTF-16 code units.
        let command: String = text.chars().take_while(|c| !c.is_whitespace()).collect();
        let length = command.encode_utf16().count();
        message["entities"] = json!([{"offset": 0, "length": length, "type": "bot_command"}]);
    }
    json!({"update_id": update_id, "message": message})
}

/// A text message from `user_id` in the supergroup `chat_id` (a
/// negative id, as Telegram gives groups); commands and `@mentions`
/// carry their entities.
pub fn group_text(update_id: i64, user_id: i64, chat_id: i64, text: &str) -> Value {
    let mut message = json!({
        "message_id": update_id,
        "from": user(user_id),
        "chat": {"id": chat_id, "type": "supergroup", "title": "Test group"},
        "date": now(),
        "text": text,
    });
    let mut entities = Vec::new();
    let mut offset = 0;
    for word in text.split(' ') {
        let length = word.encode_utf16().count();
        let kind = if word.starts_with('/') && offset == 0 {
            Some("bot_command")
        } else if word.starts_with('@') && length > 1 {
            Some("mention")
        } else {
            None
        };
        if let Some(kind) = kind {
            entities.push(json!({"offset": offset, "length": length, "type": kind}));
        }
        offset += length + 1;
    }
    if !entities.is_empty() {
        message["entities"] = Value::Array(entities);
    }
    json!({"update_id": update_id, "message": message})
}

/// `update` (a message) made a reply to the bot's message `message_id`.
pub fn replying_to_bot(mut update: Value, message_id: i64) -> Value {
    let chat = update["message"]["chat"].clone();
    update["message"]["reply_to_message"] = json!({
        "message_id": message_id,
        "from": {"id": super::BOT_ID, "is_bot": true, "first_name": "RemoteAgent", "username": super::BOT_USERNAME},
        "chat": chat,
        "date": now(),
        "text": "…",
    });
    update
}

/// `update` (a message) written in forum topic `thread` of its chat, as
/// Telegram sends it: `message_thread_id`, `is_topic_message`, the chat's
/// `is_forum`, and a `reply_to_message` that is the service message that
/// created the topic (the bot created it, so it is the bot's).
pub fn in_topic(mut update: Value, thread: i64, topic_name: &str) -> Value {
    update["message"]["chat"]["is_forum"] = json!(true);
    update["message"]["message_thread_id"] = json!(thread);
    update["message"]["is_topic_message"] = json!(true);
    let chat = update["message"]["chat"].clone();
    update["message"]["reply_to_message"] = json!({
        "message_id": thread,
        "from": {"id": super::BOT_ID, "is_bot": true, "first_name": "RemoteAgent", "username": super::BOT_USERNAME},
        "chat": chat,
        "date": now(),
        "message_thread_id": thread,
        "forum_topic_created": {"name": topic_name, "icon_color": 0x6F_B9_F0},
    });
    update
}

/// A press on an inline button with `data` under the bot's message
/// `message_id` in private chat `chat_id`.
pub fn callback(update_id: i64, user_id: i64, chat_id: i64, message_id: i64, data: &str) -> Value {
    json!({
        "update_id": update_id,
        "callback_query": {
            "id": format!("{}{}", user_id, update_id),
            "from": user(user_id),
            "message": {
                "message_id": message_id,
                "from": {"id": super::BOT_ID, "is_bot": true, "first_name": "RemoteAgent", "username": super::BOT_USERNAME},
                "chat": private_chat(chat_id),
                "date": now(),
                "text": "…",
            },
            "chat_instance": format!("{}", chat_id.wrapping_mul(7919)),
            "data": data,
        }
    })
}

/// A message of another kind than text (photo, document, voice …) from
/// `user_id` in private chat `chat_id`: `fields` are merged into it, and
/// a caption carries its `bot_command` entity as a text would.
fn media(
    update_id: i64,
    user_id: i64,
    chat_id: i64,
    fields: Value,
    caption: Option<&str>,
) -> Value {
    let mut message = json!({
        "message_id": update_id,
        "from": user(user_id),
        "chat": private_chat(chat_id),
        "date": now(),
    });
    if let (Value::Object(m), Value::Object(f)) = (&mut message, fields) {
        m.extend(f);
    }
    if let Some(caption) = caption {
        message["caption"] = json!(caption);
    }
    json!({"update_id": update_id, "message": message})
}

/// A photo (the sizes [`super::FakeTelegram::add_photo`] stored, smallest
/// first, as Telegram lists them), with an optional caption.
pub fn photo(
    update_id: i64,
    user_id: i64,
    chat_id: i64,
    sizes: &[super::FakeFile],
    caption: Option<&str>,
) -> Value {
    let sizes: Vec<Value> = sizes
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let side = 90 * (i as i64 + 1) * (i as i64 + 1);
            json!({
                "file_id": f.file_id,
                "file_unique_id": f.file_unique_id,
                "file_size": f.file_size,
                "width": side,
                "height": side * 3 / 4,
            })
        })
        .collect();
    media(
        update_id,
        user_id,
        chat_id,
        json!({"photo": sizes}),
        caption,
    )
}

/// A document (any file sent as a file) named `file_name`, of type `mime`.
pub fn document(
    update_id: i64,
    user_id: i64,
    chat_id: i64,
    file: &super::FakeFile,
    file_name: &str,
    mime: &str,
    caption: Option<&str>,
) -> Value {
    let document = json!({
        "file_id": file.file_id,
        "file_unique_id": file.file_unique_id,
        "file_size": file.file_size,
        "file_name": file_name,
        "mime_type": mime,
    });
    media(
        update_id,
        user_id,
        chat_id,
        json!({"document": document}),
        caption,
    )
}

/// A voice note (recorded in the app: OGG/Opus) of `duration` seconds.
pub fn voice(
    update_id: i64,
    user_id: i64,
    chat_id: i64,
    file: &super::FakeFile,
    duration: i64,
) -> Value {
    let voice = json!({
        "file_id": file.file_id,
        "file_unique_id": file.file_unique_id,
        "file_size": file.file_size,
        "duration": duration,
        "mime_type": "audio/ogg",
    });
    media(update_id, user_id, chat_id, json!({"voice": voice}), None)
}

/// An audio file (music player kind: `audio`, not `voice`).
pub fn audio(
    update_id: i64,
    user_id: i64,
    chat_id: i64,
    file: &super::FakeFile,
    file_name: &str,
    mime: &str,
    duration: i64,
) -> Value {
    let audio = json!({
        "file_id": file.file_id,
        "file_unique_id": file.file_unique_id,
        "file_size": file.file_size,
        "file_name": file_name,
        "mime_type": mime,
        "duration": duration,
    });
    media(update_id, user_id, chat_id, json!({"audio": audio}), None)
}
