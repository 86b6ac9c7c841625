//! The Bot API's refusals, as a table, and the pure checks the fake server
//! applies with it (no I/O: property tests call them without a server).
//!
//! Each row of [`RULES`] names what the Bot API documentation says, the
//! methods it applies to, and the exact answer: HTTP code and
//! `description`. The texts are those of the Bot API server
//! (`tdlib/telegram-bot-api`, TDLib's `fix_formatted_text` and
//! `parse_html`) and of Telegram's own answers to bots.
//!
//! | Rule | Methods | Code | `description` |
//! |---|---|---|---|
//! | `text` missing or `""` | sendMessage, editMessageText | 400 | Bad Request: message text is empty |
//! | `text` over 32 KiB before parsing | sendMessage, editMessageText, sendDocument | 400 | Bad Request: text is too long |
//! | unknown `parse_mode` | sendMessage, editMessageText, sendDocument | 400 | Bad Request: unsupported parse_mode |
//! | HTML that does not parse | sendMessage, editMessageText, sendDocument | 400 | Bad Request: can't parse entities: … |
//! | text empty once parsed and trimmed | sendMessage, editMessageText | 400 | Bad Request: message must be non-empty |
//! | text over 4096 UTF-16 units once parsed | sendMessage, editMessageText | 400 | Bad Request: message is too long |
//! | caption over 1024 UTF-16 units once parsed | sendDocument | 400 | Bad Request: message caption is too long |
//! | `reply_markup` not JSON | all with `reply_markup` | 400 | Bad Request: can't parse reply keyboard markup JSON object |
//! | `reply_markup` not an object | all with `reply_markup` | 400 | Bad Request: object expected as reply markup |
//! | `inline_keyboard` not an array of arrays | all with `reply_markup` | 400 | Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays |
//! | button not an object | all with `reply_markup` | 400 | Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object |
//! | button without `text` | all with `reply_markup` | 400 | Bad Request: can't parse inline keyboard button: Can't find field "text" |
//! | button without action (or `callback_data: ""`) | all with `reply_markup` | 400 | Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard |
//! | `callback_data` over 64 bytes | all with `reply_markup` | 400 | Bad Request: BUTTON_DATA_INVALID |
//! | no `chat_id` | all with `chat_id` | 400 | Bad Request: chat not found |
//! | no `message_id` | edits, deleteMessage | 400 | Bad Request: message identifier is not specified |
//! | edit of a message not in the chat | editMessageText, editMessageReplyMarkup | 400 | Bad Request: message to edit not found |
//! | edit that changes nothing | editMessageText, editMessageReplyMarkup | 400 | Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message |
//! | delete of a message not in the chat | deleteMessage | 400 | Bad Request: message to delete not found |
//! | the user blocked the bot | sendMessage, editMessageText, editMessageReplyMarkup, sendDocument, sendChatAction | 403 | Forbidden: bot was blocked by the user |
//! | flood limit | all | 429 | Too Many Requests: retry after N (`parameters.retry_after`) |
//! | no `document` | sendDocument | 400 | Bad Request: there is no document in the request |
//! | empty file | sendDocument | 400 | Bad Request: file must be non-empty |
//! | file over 50 MB | sendDocument | 413 | Request Entity Too Large |
//! | unknown `callback_query_id` | answerCallbackQuery | 400 | Bad Request: query is too old and response timeout expired or query ID is invalid |
//! | `getUpdates` while a webhook is set | getUpdates | 409 | Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first |
//! | a waiting `getUpdates` overtaken by another | getUpdates | 409 | Conflict: terminated by other getUpdates request; make sure that only one bot instance is running |
//! | wrong token | all | 401 | Unauthorized |
//!
//! A request breaking several rules gets the first that applies, in the
//! Bot API server's order: text, then `reply_markup`, then the chat and the
//! message, then the block, then "not modified".

use serde_json::Value;

use super::formatted::{self, EmptyText, Rendered};
use super::html;

/// Telegram's limit on a message's text, in UTF-16 code units after entity
/// parsing.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// Telegram's limit on a caption, in UTF-16 code units after entity parsing.
pub const MAX_CAPTION_CHARS: usize = 1024;
/// Telegram's limit on a file a bot uploads (50 MB).
pub const MAX_UPLOAD_BYTES: usize = 50_000_000;
/// The Bot API server's limit on a text or caption before parsing, in bytes.
pub const MAX_RAW_TEXT_BYTES: usize = 1 << 15;
/// Telegram's limit on `callback_data`, in bytes.
pub const MAX_CALLBACK_DATA_BYTES: usize = 64;

/// Declares [`RuleId`] and [`RuleId::ALL`] from one list, so a rule added
/// to the enum is also in `ALL`, and `every_rule_has_one_row` checks it.
macro_rules! rule_ids {
    ($($id:ident,)*) => {
        /// The rules, one per row of [`RULES`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RuleId {
            $($id,)*
        }

        impl RuleId {
            /// Every rule, in declaration order.
            pub const ALL: &[RuleId] = &[$(RuleId::$id,)*];
        }
    };
}

rule_ids! {
    TextMissing,
    RawTextTooLong,
    UnsupportedParseMode,
    CantParseEntities,
    TextEmptyAfterTrim,
    MessageTooLong,
    CaptionTooLong,
    MarkupNotJson,
    MarkupNotObject,
    InlineKeyboardNotArrays,
    ButtonNotObject,
    ButtonWithoutText,
    ButtonWithoutAction,
    ButtonDataInvalid,
    ChatMissing,
    MessageIdMissing,
    EditTargetNotFound,
    NotModified,
    DeleteTargetNotFound,
    BotBlocked,
    TooManyRequests,
    DocumentMissing,
    FileEmpty,
    FileTooLarge,
    CallbackQueryInvalid,
    WebhookActive,
    TerminatedByOtherPoll,
    Unauthorized,
}

/// One refusal of the Bot API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: RuleId,
    /// What the Bot API documentation (or, where it says nothing, the Bot
    /// API server) says.
    pub documentation: &'static str,
    pub methods: &'static [&'static str],
    pub code: u16,
    /// Telegram's exact `description`; for [`RuleId::CantParseEntities`]
    /// the prefix of it (the parser's detail follows), for
    /// [`RuleId::TooManyRequests`] the prefix before the seconds.
    pub description: &'static str,
}

const TEXT_METHODS: &[&str] = &["sendMessage", "editMessageText"];
const FORMATTED_METHODS: &[&str] = &["sendMessage", "editMessageText", "sendDocument"];
const MARKUP_METHODS: &[&str] = &[
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "sendDocument",
];
const EDIT_METHODS: &[&str] = &["editMessageText", "editMessageReplyMarkup"];
/// Methods refused to a user who blocked the bot.
pub const BLOCKABLE_METHODS: &[&str] = &[
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "sendDocument",
    "sendChatAction",
];
const ALL: &[&str] = &["*"];

/// The table: one row per refusal.
pub const RULES: &[Rule] = &[
    Rule {
        id: RuleId::TextMissing,
        documentation: "text (String, required): Text of the message to be sent, 1-4096 characters after entities parsing",
        methods: TEXT_METHODS,
        code: 400,
        description: "Bad Request: message text is empty",
    },
    Rule {
        id: RuleId::RawTextTooLong,
        documentation: "Bot API server: a text or caption longer than 32,768 bytes before parsing is refused",
        methods: FORMATTED_METHODS,
        code: 400,
        description: "Bad Request: text is too long",
    },
    Rule {
        id: RuleId::UnsupportedParseMode,
        documentation: "parse_mode (String, optional): Mode for parsing entities in the message text. See formatting options for more details",
        methods: FORMATTED_METHODS,
        code: 400,
        description: "Bad Request: unsupported parse_mode",
    },
    Rule {
        id: RuleId::CantParseEntities,
        documentation: "HTML style: Only the tags mentioned above are currently supported. All <, > and & symbols that are not a part of a tag or an HTML entity must be replaced with the corresponding HTML entities",
        methods: FORMATTED_METHODS,
        code: 400,
        description: "Bad Request: can't parse entities: ",
    },
    Rule {
        id: RuleId::TextEmptyAfterTrim,
        documentation: "text: 1-4096 characters after entities parsing (Telegram trims leading and trailing spaces and newlines)",
        methods: TEXT_METHODS,
        code: 400,
        description: "Bad Request: message must be non-empty",
    },
    Rule {
        id: RuleId::MessageTooLong,
        documentation: "text: 1-4096 characters after entities parsing (counted in UTF-16 code units, as entity offsets are)",
        methods: TEXT_METHODS,
        code: 400,
        description: "Bad Request: message is too long",
    },
    Rule {
        id: RuleId::CaptionTooLong,
        documentation: "caption (String, optional): Document caption (may also be used when resending documents by file_id), 0-1024 characters after entities parsing",
        methods: &["sendDocument"],
        code: 400,
        description: "Bad Request: message caption is too long",
    },
    Rule {
        id: RuleId::MarkupNotJson,
        documentation: "reply_markup (InlineKeyboardMarkup, optional): A JSON-serialized object for an inline keyboard",
        methods: MARKUP_METHODS,
        code: 400,
        description: "Bad Request: can't parse reply keyboard markup JSON object",
    },
    Rule {
        id: RuleId::MarkupNotObject,
        documentation: "reply_markup: A JSON-serialized object",
        methods: MARKUP_METHODS,
        code: 400,
        description: "Bad Request: object expected as reply markup",
    },
    Rule {
        id: RuleId::InlineKeyboardNotArrays,
        documentation: "InlineKeyboardMarkup.inline_keyboard (Array of Array of InlineKeyboardButton): Array of button rows",
        methods: MARKUP_METHODS,
        code: 400,
        description: "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays",
    },
    Rule {
        id: RuleId::ButtonNotObject,
        documentation: "InlineKeyboardButton: This object represents one button of an inline keyboard",
        methods: MARKUP_METHODS,
        code: 400,
        description: "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object",
    },
    Rule {
        id: RuleId::ButtonWithoutText,
        documentation: "InlineKeyboardButton.text (String): Label text on the button",
        methods: MARKUP_METHODS,
        code: 400,
        description: "Bad Request: can't parse inline keyboard button: Can't find field \"text\"",
    },
    Rule {
        id: RuleId::ButtonWithoutAction,
        documentation: "InlineKeyboardButton: Exactly one of the optional fields must be used to specify type of the button (an empty callback_data counts as absent)",
        methods: MARKUP_METHODS,
        code: 400,
        description: "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
    },
    Rule {
        id: RuleId::ButtonDataInvalid,
        documentation: "InlineKeyboardButton.callback_data (String, optional): Data to be sent in a callback query to the bot when the button is pressed, 1-64 bytes",
        methods: MARKUP_METHODS,
        code: 400,
        description: "Bad Request: BUTTON_DATA_INVALID",
    },
    Rule {
        id: RuleId::ChatMissing,
        documentation: "chat_id (Integer or String, required): Unique identifier for the target chat",
        methods: ALL,
        code: 400,
        description: "Bad Request: chat not found",
    },
    Rule {
        id: RuleId::MessageIdMissing,
        documentation: "message_id (Integer): Identifier of the message to edit / to delete",
        methods: &["editMessageText", "editMessageReplyMarkup", "deleteMessage"],
        code: 400,
        description: "Bad Request: message identifier is not specified",
    },
    Rule {
        id: RuleId::EditTargetNotFound,
        documentation: "message_id: Identifier of the message to edit",
        methods: EDIT_METHODS,
        code: 400,
        description: "Bad Request: message to edit not found",
    },
    Rule {
        id: RuleId::NotModified,
        documentation: "Use this method to edit text and game messages (Telegram refuses an edit whose resulting text, entities and reply markup equal the message's)",
        methods: EDIT_METHODS,
        code: 400,
        description: "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
    },
    Rule {
        id: RuleId::DeleteTargetNotFound,
        documentation: "deleteMessage: Use this method to delete a message",
        methods: &["deleteMessage"],
        code: 400,
        description: "Bad Request: message to delete not found",
    },
    Rule {
        id: RuleId::BotBlocked,
        documentation: "Bot API: a user who blocked the bot cannot be sent or edited messages (USER_IS_BLOCKED)",
        methods: BLOCKABLE_METHODS,
        code: 403,
        description: "Forbidden: bot was blocked by the user",
    },
    Rule {
        id: RuleId::TooManyRequests,
        documentation: "ResponseParameters.retry_after (Integer, optional): In case of exceeding flood control, the number of seconds left to wait before the request can be repeated",
        methods: ALL,
        code: 429,
        description: "Too Many Requests: retry after ",
    },
    Rule {
        id: RuleId::DocumentMissing,
        documentation: "document (InputFile or String, required): File to send",
        methods: &["sendDocument"],
        code: 400,
        description: "Bad Request: there is no document in the request",
    },
    Rule {
        id: RuleId::FileEmpty,
        documentation: "document: File to send (an empty upload is refused)",
        methods: &["sendDocument"],
        code: 400,
        description: "Bad Request: file must be non-empty",
    },
    Rule {
        id: RuleId::FileTooLarge,
        documentation: "Bots can currently send files of any type of up to 50 MB in size",
        methods: &["sendDocument"],
        code: 413,
        description: "Request Entity Too Large",
    },
    Rule {
        id: RuleId::CallbackQueryInvalid,
        documentation: "callback_query_id (String, required): Unique identifier for the query to be answered",
        methods: &["answerCallbackQuery"],
        code: 400,
        description: "Bad Request: query is too old and response timeout expired or query ID is invalid",
    },
    Rule {
        id: RuleId::WebhookActive,
        documentation: "getUpdates: This method will not work if an outgoing webhook is set up",
        methods: &["getUpdates"],
        code: 409,
        description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    },
    Rule {
        id: RuleId::TerminatedByOtherPoll,
        documentation: "Bot API server: a new getUpdates ends the one still waiting (only one bot instance may poll)",
        methods: &["getUpdates"],
        code: 409,
        description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    },
    Rule {
        id: RuleId::Unauthorized,
        documentation: "Each bot is given a unique authentication token when it is created",
        methods: ALL,
        code: 401,
        description: "Unauthorized",
    },
];

/// The row of a rule.
pub fn rule(id: RuleId) -> &'static Rule {
    // Every `RuleId` has a row: `every_rule_has_one_row` checks it.
    RULES
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no row for {id:?} in RULES"))
}

/// Telegram's answer to a refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub description: String,
    /// `parameters.retry_after`, for a 429.
    pub retry_after: Option<u64>,
    /// The rule refused by (`None` only for what the fake does not
    /// implement, such as Markdown).
    pub rule: Option<RuleId>,
}

impl Refusal {
    /// The answer of a rule, as in its row.
    pub fn of(id: RuleId) -> Self {
        let row = rule(id);
        Refusal {
            code: row.code,
            description: row.description.to_string(),
            retry_after: None,
            rule: Some(id),
        }
    }

    /// An answer outside the table: a malformed request, or what the fake
    /// does not implement.
    pub fn unlisted(code: u16, description: String) -> Self {
        Refusal {
            code,
            description,
            retry_after: None,
            rule: None,
        }
    }

    /// "can't parse entities: {detail}".
    pub fn cant_parse_entities(detail: &str) -> Self {
        let mut r = Self::of(RuleId::CantParseEntities);
        r.description.push_str(detail);
        r
    }

    /// A 429; Telegram always gives `retry_after`, `None` is for testing
    /// clients against a bare 429.
    pub fn too_many_requests(retry_after: Option<u64>) -> Self {
        let mut r = Self::of(RuleId::TooManyRequests);
        r.retry_after = retry_after;
        r.description = match retry_after {
            Some(n) => format!("{}{n}", r.description),
            None => "Too Many Requests".to_string(),
        };
        r
    }

    /// The Bot API's JSON body for this refusal.
    pub fn to_json(&self) -> Value {
        let mut body = serde_json::json!({
            "ok": false,
            "error_code": self.code,
            "description": self.description,
        });
        if let Some(n) = self.retry_after {
            body["parameters"] = serde_json::json!({ "retry_after": n });
        }
        body
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.description)
    }
}

impl std::error::Error for Refusal {}

/// Length as Telegram counts it: UTF-16 code units ("🚀" is 2).
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Parses a text for `parse_mode` and applies Telegram's cleaning and
/// trimming; `allow_empty` is for captions.
fn render(raw: &str, parse_mode: Option<&str>, allow_empty: bool) -> Result<Rendered, Refusal> {
    if raw.len() > MAX_RAW_TEXT_BYTES {
        return Err(Refusal::of(RuleId::RawTextTooLong));
    }
    let mode = parse_mode.unwrap_or("").to_ascii_lowercase();
    let (text, spans) = match mode.as_str() {
        "" | "none" => (raw.to_string(), Vec::new()),
        "html" => {
            let parsed = html::parse(raw).map_err(|e| Refusal::cant_parse_entities(&e))?;
            (parsed.text, parsed.spans)
        }
        "markdown" | "markdownv2" => {
            // Not a Telegram refusal: the fake would rather fail loudly than
            // accept what it cannot check.
            return Err(Refusal::unlisted(
                400,
                format!(
                    "Bad Request: the fake Telegram does not implement parse_mode {parse_mode:?}"
                ),
            ));
        }
        _ => return Err(Refusal::of(RuleId::UnsupportedParseMode)),
    };
    formatted::finish(&text, spans, allow_empty)
        .map_err(|EmptyText| Refusal::of(RuleId::TextEmptyAfterTrim))
}

/// Checks a message text (`sendMessage`, `editMessageText`) as Telegram
/// does, and gives what Telegram would store and show.
pub fn check_message_text(text: &str, parse_mode: Option<&str>) -> Result<Rendered, Refusal> {
    if text.is_empty() {
        return Err(Refusal::of(RuleId::TextMissing));
    }
    let rendered = render(text, parse_mode, false)?;
    if utf16_len(&rendered.text) > MAX_MESSAGE_CHARS {
        return Err(Refusal::of(RuleId::MessageTooLong));
    }
    Ok(rendered)
}

/// Checks a caption (`sendDocument`): `None` when Telegram shows none (an
/// empty caption, or one of whitespace only).
pub fn check_caption(caption: &str, parse_mode: Option<&str>) -> Result<Option<Rendered>, Refusal> {
    if caption.is_empty() {
        return Ok(None);
    }
    let rendered = render(caption, parse_mode, true)?;
    if rendered.text.is_empty() {
        return Ok(None);
    }
    if utf16_len(&rendered.text) > MAX_CAPTION_CHARS {
        return Err(Refusal::of(RuleId::CaptionTooLong));
    }
    Ok(Some(rendered))
}

/// Checks a `reply_markup` object as Telegram does: its shape, every
/// inline button's text and action, and `callback_data` of 1–64 bytes.
pub fn check_reply_markup(markup: &Value) -> Result<(), Refusal> {
    let Value::Object(object) = markup else {
        return Err(Refusal::of(RuleId::MarkupNotObject));
    };
    let Some(keyboard) = object.get("inline_keyboard") else {
        return Ok(());
    };
    let Value::Array(rows) = keyboard else {
        return Err(Refusal::of(RuleId::InlineKeyboardNotArrays));
    };
    let mut data_lengths = Vec::new();
    for row in rows {
        let Value::Array(buttons) = row else {
            return Err(Refusal::of(RuleId::InlineKeyboardNotArrays));
        };
        for button in buttons {
            let Value::Object(button) = button else {
                return Err(Refusal::of(RuleId::ButtonNotObject));
            };
            if !button.get("text").is_some_and(is_string_like) {
                return Err(Refusal::of(RuleId::ButtonWithoutText));
            }
            let non_empty = |field: &str| {
                button
                    .get(field)
                    .and_then(string_like)
                    .is_some_and(|s| !s.is_empty())
            };
            if non_empty("url") {
                continue;
            }
            if non_empty("callback_data") {
                let data = button.get("callback_data").and_then(string_like);
                data_lengths.push(data.map_or(0, |d| d.len()));
                continue;
            }
            const OTHER_ACTIONS: &[&str] = &[
                "callback_game",
                "pay",
                "switch_inline_query",
                "switch_inline_query_chosen_chat",
                "switch_inline_query_current_chat",
                "login_url",
                "web_app",
                "copy_text",
            ];
            if !OTHER_ACTIONS.iter().any(|f| button.contains_key(*f)) {
                return Err(Refusal::of(RuleId::ButtonWithoutAction));
            }
        }
    }
    // Telegram's servers check the data once the Bot API server has parsed
    // the whole keyboard.
    if data_lengths.iter().any(|n| *n > MAX_CALLBACK_DATA_BYTES) {
        return Err(Refusal::of(RuleId::ButtonDataInvalid));
    }
    Ok(())
}

/// Reads a `reply_markup` parameter (an object in JSON bodies, a JSON
/// string in form bodies), checks it, and gives the markup the message
/// carries: `None` for none or an empty inline keyboard.
pub fn parse_reply_markup(param: Option<&Value>) -> Result<Option<Value>, Refusal> {
    let markup = match param {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => {
            serde_json::from_str::<Value>(s).map_err(|_| Refusal::of(RuleId::MarkupNotJson))?
        }
        Some(v) => v.clone(),
    };
    check_reply_markup(&markup)?;
    let has_buttons = markup
        .get("inline_keyboard")
        .and_then(Value::as_array)
        .is_some_and(|rows| !rows.is_empty());
    let other_keyboard = ["keyboard", "remove_keyboard", "force_reply"]
        .iter()
        .any(|k| markup.get(*k).is_some());
    Ok((has_buttons || other_keyboard).then_some(markup))
}

/// The reply markup Telegram compares for "not modified": buttons' texts
/// and actions, numbers read as strings.
fn canonical_markup(markup: Option<&Value>) -> Option<Value> {
    fn canon(v: &Value) -> Value {
        match v {
            Value::Number(n) => Value::String(n.to_string()),
            Value::Array(a) => Value::Array(a.iter().map(canon).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), canon(v))).collect())
            }
            other => other.clone(),
        }
    }
    markup.map(canon)
}

/// Refuses an edit whose result equals the message as it stands: the same
/// visible text and entities (not the same HTML) and the same markup.
pub fn check_edit(
    current: (&Rendered, Option<&Value>),
    new: (&Rendered, Option<&Value>),
) -> Result<(), Refusal> {
    if current.0 == new.0 && canonical_markup(current.1) == canonical_markup(new.1) {
        return Err(Refusal::of(RuleId::NotModified));
    }
    Ok(())
}

/// Checks an uploaded file's size.
pub fn check_upload(size: usize) -> Result<(), Refusal> {
    if size == 0 {
        return Err(Refusal::of(RuleId::FileEmpty));
    }
    if size > MAX_UPLOAD_BYTES {
        return Err(Refusal::of(RuleId::FileTooLarge));
    }
    Ok(())
}

fn is_string_like(v: &Value) -> bool {
    string_like(v).is_some()
}

/// The Bot API reads a number where it expects a string.
fn string_like(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_rule_has_one_row() {
        assert_eq!(RuleId::ALL.len(), RULES.len());
        for &id in RuleId::ALL {
            assert_eq!(RULES.iter().filter(|r| r.id == id).count(), 1, "{id:?}");
        }
    }

    #[test]
    fn utf16_counts_like_telegram() {
        assert_eq!(utf16_len("🚀"), 2);
        assert_eq!(utf16_len("é中"), 2);
        assert_eq!(utf16_len("a\n"), 2);
    }

    #[test]
    fn message_length_is_counted_in_utf16_after_parsing() {
        let html = |n| format!("<b>{}</b>", "🚀".repeat(n));
        assert!(check_message_text(&html(2048), Some("HTML")).is_ok());
        assert_eq!(
            check_message_text(&html(2049), Some("HTML"))
                .unwrap_err()
                .rule,
            Some(RuleId::MessageTooLong)
        );
        // Markup and entities cost nothing: 4096 visible "<" fit.
        assert!(check_message_text(&"&lt;".repeat(4096), Some("HTML")).is_ok());
        // Trailing newlines are trimmed before counting.
        let text = format!("{}\n\n", "a".repeat(4096));
        assert_eq!(check_message_text(&text, None).unwrap().text.len(), 4096);
    }

    #[test]
    fn text_is_stored_trimmed() {
        let r = check_message_text("\n  <b>hi</b> there\n\n", Some("HTML")).unwrap();
        assert_eq!(r.text, "hi there");
        assert_eq!(r.entities[0].offset, 0);
        assert_eq!(r.entities[0].length, 2);
    }

    #[test]
    fn empty_texts_are_refused_with_the_right_description() {
        assert_eq!(
            check_message_text("", None).unwrap_err().description,
            "Bad Request: message text is empty"
        );
        for text in ["\n", " ", "<b> </b>", "<i></i>\n"] {
            assert_eq!(
                check_message_text(text, Some("HTML"))
                    .unwrap_err()
                    .description,
                "Bad Request: message must be non-empty",
                "{text:?}"
            );
        }
    }

    #[test]
    fn not_modified_compares_what_telegram_shows() {
        let r = |html: &str| check_message_text(html, Some("HTML")).unwrap();
        let kb = json!({"inline_keyboard": [[{"text": "Stop", "callback_data": "stop:1"}]]});
        let same = [
            ("<b>a</b>", "<strong>a</strong>"),
            ("x", "x\n"),
            ("<b>a</b><b>b</b>", "<b>ab</b>"),
            ("a &amp; b", "a & b"),
        ];
        for (a, b) in same {
            assert!(
                check_edit((&r(a), Some(&kb)), (&r(b), Some(&kb))).is_err(),
                "{a:?} vs {b:?}"
            );
        }
        let differ = [("<b>a</b>", "<i>a</i>"), ("<b>a</b>", "a"), ("a", "b")];
        for (a, b) in differ {
            assert!(
                check_edit((&r(a), None), (&r(b), None)).is_ok(),
                "{a:?} vs {b:?}"
            );
        }
        // Same text, keyboard removed: modified.
        assert!(check_edit((&r("a"), Some(&kb)), (&r("a"), None)).is_ok());
    }

    #[test]
    fn reply_markup_rules() {
        let kb = |button: Value| json!({"inline_keyboard": [[button]]});
        let ok = kb(json!({"text": "a", "callback_data": "x".repeat(64)}));
        assert!(check_reply_markup(&ok).is_ok());
        let cases = [
            (
                kb(json!({"text": "a", "callback_data": "x".repeat(65)})),
                RuleId::ButtonDataInvalid,
            ),
            (
                kb(json!({"text": "a", "callback_data": "é".repeat(33)})),
                RuleId::ButtonDataInvalid,
            ),
            (
                kb(json!({"text": "a", "callback_data": ""})),
                RuleId::ButtonWithoutAction,
            ),
            (kb(json!({"text": "a"})), RuleId::ButtonWithoutAction),
            (kb(json!({"callback_data": "x"})), RuleId::ButtonWithoutText),
            (kb(json!("x")), RuleId::ButtonNotObject),
            (
                json!({"inline_keyboard": [1]}),
                RuleId::InlineKeyboardNotArrays,
            ),
            (json!([]), RuleId::MarkupNotObject),
        ];
        for (markup, rule) in cases {
            assert_eq!(
                check_reply_markup(&markup).unwrap_err().rule,
                Some(rule),
                "{markup}"
            );
        }
        assert_eq!(
            parse_reply_markup(Some(&json!("{"))).unwrap_err().rule,
            Some(RuleId::MarkupNotJson)
        );
        assert_eq!(
            parse_reply_markup(Some(&json!({"inline_keyboard": []}))),
            Ok(None)
        );
    }

    #[test]
    fn captions_may_be_empty_but_not_long() {
        assert_eq!(check_caption("", Some("HTML")), Ok(None));
        assert_eq!(check_caption(" \n", Some("HTML")), Ok(None));
        assert!(check_caption(&"🚀".repeat(512), None).unwrap().is_some());
        assert_eq!(
            check_caption(&"🚀".repeat(513), None)
                .unwrap_err()
                .description,
            "Bad Request: message caption is too long"
        );
    }
}
