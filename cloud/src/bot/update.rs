//! The parts of a Telegram `Update` the bot reads. Unknown fields are
//! ignored, so newer Bot API versions do not break parsing.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    #[serde(default)]
    pub from: Option<User>,
    pub chat: Chat,
    #[serde(default)]
    pub text: Option<String>,
    /// The message this one replies to (only its author is read).
    #[serde(default)]
    pub reply_to_message: Option<Box<RepliedTo>>,
    /// A media message's caption (a photo's or document's text).
    #[serde(default)]
    pub caption: Option<String>,
    /// The album a photo or document belongs to: Telegram sends an album
    /// as one message per item, all with this id.
    #[serde(default)]
    pub media_group_id: Option<String>,
    /// A photo, in the sizes Telegram made of it, smallest first.
    #[serde(default)]
    pub photo: Vec<PhotoSize>,
    /// A file sent as a file.
    #[serde(default)]
    pub document: Option<FileRef>,
    /// A voice note recorded in the app.
    #[serde(default)]
    pub voice: Option<FileRef>,
    /// An audio file (music kind).
    #[serde(default)]
    pub audio: Option<FileRef>,
    /// The forum topic the message was written in (with
    /// `is_topic_message`); see `crate::topics`.
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    #[serde(default)]
    pub is_topic_message: bool,
}

impl Message {
    /// The forum topic the message was written in, if any.
    pub fn topic(&self) -> Option<i64> {
        self.message_thread_id.filter(|_| self.is_topic_message)
    }
}

/// One size of a photo.
#[derive(Debug, Clone, Deserialize)]
pub struct PhotoSize {
    pub file_id: String,
    #[serde(default)]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
}

/// A document, voice note or audio file: what `getFile` needs and what the
/// user sees of it.
#[derive(Debug, Clone, Deserialize)]
pub struct FileRef {
    pub file_id: String,
    #[serde(default)]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Seconds (voice and audio).
    #[serde(default)]
    pub duration: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RepliedTo {
    #[serde(default)]
    pub message_id: i64,
    #[serde(default)]
    pub from: Option<User>,
}

impl Chat {
    /// A one-to-one chat with the bot (not a group, supergroup or channel).
    pub fn is_private(&self) -> bool {
        self.kind == "private"
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub username: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    #[serde(default, rename = "type")]
    pub kind: String,
    /// A supergroup with topics.
    #[serde(default)]
    pub is_forum: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    #[serde(default)]
    pub message: Option<CallbackMessage>,
    #[serde(default)]
    pub data: Option<String>,
}

/// The message a button was under (possibly "inaccessible": then only its
/// id and chat are known, which is all the bot needs).
#[derive(Debug, Clone, Deserialize)]
pub struct CallbackMessage {
    pub message_id: i64,
    pub chat: Chat,
    /// The forum topic of the message (with `is_topic_message`).
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    #[serde(default)]
    pub is_topic_message: bool,
}

impl CallbackMessage {
    /// The forum topic the message is in, if any.
    pub fn topic(&self) -> Option<i64> {
        self.message_thread_id.filter(|_| self.is_topic_message)
    }
}

/// A `/command@bot args` split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// Lower case, without the slash and the `@bot` suffix.
    pub name: String,
    /// The `@bot` the command was addressed to, if any.
    pub target: Option<&'a str>,
    pub args: &'a str,
}

/// Parses a command; `None` for plain text.
pub fn parse_command(text: &str) -> Option<Command<'_>> {
    let text = text.trim_start();
    let rest = text.strip_prefix('/')?;
    let (head, args) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let (name, target) = match head.split_once('@') {
        Some((name, target)) => (name, Some(target)),
        None => (head, None),
    };
    let name = name.to_ascii_lowercase();
    if name.is_empty() {
        return None;
    }
    Some(Command { name, target, args })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse_command("/pair  xk9 4tz "),
            Some(Command {
                name: "pair".into(),
                target: None,
                args: "xk9 4tz"
            })
        );
        assert_eq!(
            parse_command("/Agents@my_bot"),
            Some(Command {
                name: "agents".into(),
                target: Some("my_bot"),
                args: ""
            })
        );
        assert_eq!(parse_command("fix the tests"), None);
        assert_eq!(parse_command("/ hello"), None);
    }

    #[test]
    fn updates_parse_with_unknown_fields() {
        let u: Update = serde_json::from_str(
            r#"{"update_id":5,"message":{"message_id":1,"from":{"id":7,"is_bot":false,"first_name":"A","x":1},"chat":{"id":7,"type":"private"},"date":0,"text":"hi"},"future":true}"#,
        )
        .unwrap();
        assert_eq!(u.message.unwrap().text.as_deref(), Some("hi"));
        let u: Update = serde_json::from_str(r#"{"update_id":6,"edited_message":{}}"#).unwrap();
        assert!(u.message.is_none() && u.callback_query.is_none());
    }
}
