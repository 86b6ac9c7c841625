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
