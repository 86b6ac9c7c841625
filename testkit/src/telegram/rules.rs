//! The Bot API's refusals, as a table: ids, methods, codes and exact
//! texts. The pure checks that apply them are in [`super::checks`].
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
//! | `reply_parameters` not JSON | sendMessage, sendDocument | 400 | Bad Request: can't parse reply parameters JSON object |
//! | `reply_parameters` not an object | sendMessage, sendDocument | 400 | Bad Request: object expected as reply parameters |
//! | no `chat_id` | all with `chat_id` | 400 | Bad Request: chat not found |
//! | no `message_id` | edits, deleteMessage | 400 | Bad Request: message identifier is not specified |
//! | edit of a message not in the chat | editMessageText, editMessageReplyMarkup | 400 | Bad Request: message to edit not found |
//! | edit that changes nothing | editMessageText, editMessageReplyMarkup | 400 | Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message |
//! | delete of a message not in the chat | deleteMessage | 400 | Bad Request: message to delete not found |
//! | reply to a message not in the chat, without `allow_sending_without_reply` | sendMessage, sendDocument | 400 | Bad Request: message to be replied not found |
//! | the user blocked the bot | sendMessage, editMessageText, editMessageReplyMarkup, sendDocument, sendChatAction | 403 | Forbidden: bot was blocked by the user |
//! | flood limit | all | 429 | Too Many Requests: retry after N (`parameters.retry_after`) |
//! | no `document` | sendDocument | 400 | Bad Request: there is no document in the request |
//! | empty file | sendDocument | 400 | Bad Request: file must be non-empty |
//! | file over 50 MB | sendDocument | 413 | Request Entity Too Large |
//! | unknown `callback_query_id` | answerCallbackQuery | 400 | Bad Request: query is too old and response timeout expired or query ID is invalid |
//! | unknown or empty `file_id` | getFile | 400 | Bad Request: invalid file_id |
//! | file over 20 MB | getFile | 400 | Bad Request: file is too big |
//! | `getUpdates` while a webhook is set | getUpdates | 409 | Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first |
//! | a waiting `getUpdates` overtaken by another | getUpdates | 409 | Conflict: terminated by other getUpdates request; make sure that only one bot instance is running |
//! | wrong token | all | 401 | Unauthorized |
//! | `createForumTopic` in a chat that is not a forum (a group without topics, a private chat while the bot's topic mode is off) | createForumTopic | 400 | Bad Request: the chat is not a forum |
//! | `createForumTopic` in a forum supergroup where the bot may not manage topics | createForumTopic | 400 | Bad Request: not enough rights to create a topic |
//! | topic `name` empty once trimmed (a longer one than 128 characters is cut there, as TDLib does) | createForumTopic, editForumTopic | 400 | Bad Request: title must be non-empty |
//! | `message_thread_id` of no live topic of the chat | sendMessage, sendDocument, sendChatAction | 400 | Bad Request: message thread not found |
//! | send into a closed topic | sendMessage, sendDocument | 400 | Bad Request: TOPIC_CLOSED |
//! | edit, close or delete of a topic that does not exist (or was deleted) | editForumTopic, closeForumTopic, reopenForumTopic, deleteForumTopic | 400 | Bad Request: TOPIC_ID_INVALID |
//! | edit that keeps the name, close of a closed topic, reopen of an open one | editForumTopic, closeForumTopic, reopenForumTopic | 400 | Bad Request: TOPIC_NOT_MODIFIED |
//! | a draft outside a private chat | sendMessageDraft | 400 | Bad Request: TEXTDRAFT_PEER_INVALID |
//! | `draft_id` missing or 0 | sendMessageDraft | 400 | Bad Request: draft_id must be non-zero |
//!
//! `sendMessageDraft` (Bot API 9.3; every bot since 9.5) is documented as
//! "stream a partial message to a user while the message is being
//! generated": `chat_id` is the "target private chat", `draft_id` "must be
//! non-zero", `text` is "0-4096 characters after entities parsing" (empty
//! shows "Thinking…"), with `parse_mode`/`entities` as for `sendMessage`,
//! and the draft is "ephemeral … a temporary 30-second preview": it must be
//! persisted with `sendMessage`. Of its refusals, the text's (raw length,
//! `parse_mode`, HTML, 4096 units) are the documented limits answered as
//! `sendMessage` answers them (assumed: the same TDLib text checks); the
//! group refusal `TEXTDRAFT_PEER_INVALID` is observed (bots that streamed
//! drafts to groups report it, nullclaw/nullclaw#626); the `draft_id` text
//! is assumed (the documentation states the rule, not the answer).
//!
//! A request breaking several rules gets the first that applies, in the
//! Bot API server's order: text, then `reply_markup`, then
//! `reply_parameters`, then the chat and the message (the one edited, or
//! the one replied to), then the block, then "not modified".

use serde_json::Value;

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
    ReplyParametersNotJson,
    ReplyParametersNotObject,
    ChatMissing,
    MessageIdMissing,
    EditTargetNotFound,
    NotModified,
    DeleteTargetNotFound,
    ReplyTargetNotFound,
    BotBlocked,
    TooManyRequests,
    DocumentMissing,
    FileEmpty,
    FileTooLarge,
    CallbackQueryInvalid,
    InvalidFileId,
    FileTooBigToDownload,
    WebhookActive,
    TerminatedByOtherPoll,
    Unauthorized,
    NotAForum,
    TopicRightsMissing,
    TopicTitleEmpty,
    ThreadNotFound,
    TopicClosed,
    TopicIdInvalid,
    TopicNotModified,
    DraftPeerInvalid,
    DraftIdInvalid,
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
/// Methods whose text is limited to 4096 units once parsed.
const LENGTH_METHODS: &[&str] = &["sendMessage", "editMessageText", "sendMessageDraft"];
const FORMATTED_METHODS: &[&str] = &[
    "sendMessage",
    "editMessageText",
    "sendDocument",
    "sendMessageDraft",
];
const MARKUP_METHODS: &[&str] = &[
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "sendDocument",
];
const EDIT_METHODS: &[&str] = &["editMessageText", "editMessageReplyMarkup"];
/// Methods that send a new message, which may reply to another.
const SEND_METHODS: &[&str] = &["sendMessage", "sendDocument"];
/// Methods refused to a user who blocked the bot.
pub const BLOCKABLE_METHODS: &[&str] = &[
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "sendDocument",
    "sendChatAction",
    "sendMessageDraft",
];
const ALL: &[&str] = &["*"];
/// Methods that manage an existing forum topic.
const TOPIC_METHODS: &[&str] = &[
    "editForumTopic",
    "closeForumTopic",
    "reopenForumTopic",
    "deleteForumTopic",
];

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
        documentation: "text: 1-4096 characters after entities parsing (counted in UTF-16 code units, as entity offsets are); sendMessageDraft: 0-4096",
        methods: LENGTH_METHODS,
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
        id: RuleId::ReplyParametersNotJson,
        documentation: "reply_parameters (ReplyParameters, optional): Description of the message to reply to (a JSON-serialized object)",
        methods: SEND_METHODS,
        code: 400,
        description: "Bad Request: can't parse reply parameters JSON object",
    },
    Rule {
        id: RuleId::ReplyParametersNotObject,
        documentation: "reply_parameters: a JSON-serialized ReplyParameters object (null, a number or an array is not one)",
        methods: SEND_METHODS,
        code: 400,
        description: "Bad Request: object expected as reply parameters",
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
        id: RuleId::ReplyTargetNotFound,
        documentation: "ReplyParameters.allow_sending_without_reply (Boolean, optional): Pass True if the message should be sent even if the specified message to be replied to is not found. Always False for replies in another chat or forum topic",
        methods: SEND_METHODS,
        code: 400,
        description: "Bad Request: message to be replied not found",
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
        id: RuleId::InvalidFileId,
        documentation: "file_id: File identifier to get information about",
        methods: &["getFile"],
        code: 400,
        description: "Bad Request: invalid file_id",
    },
    Rule {
        id: RuleId::FileTooBigToDownload,
        documentation: "For the moment, bots can download files of up to 20MB in size",
        methods: &["getFile"],
        code: 400,
        description: "Bad Request: file is too big",
    },
    Rule {
        id: RuleId::Unauthorized,
        documentation: "Each bot is given a unique authentication token when it is created",
        methods: ALL,
        code: 401,
        description: "Unauthorized",
    },
    Rule {
        id: RuleId::NotAForum,
        documentation: "createForumTopic: Use this method to create a topic in a forum supergroup chat or a private chat with a user. In the case of a supergroup chat the bot must be an administrator in the chat for this to work and must have the can_manage_topics administrator right (private chats: User.has_topics_enabled, the bot's forum topic mode)",
        methods: &["createForumTopic"],
        code: 400,
        description: "Bad Request: the chat is not a forum",
    },
    Rule {
        id: RuleId::TopicRightsMissing,
        documentation: "createForumTopic: the bot must be an administrator in the chat for this to work and must have the can_manage_topics administrator right",
        methods: &["createForumTopic"],
        code: 400,
        description: "Bad Request: not enough rights to create a topic",
    },
    Rule {
        id: RuleId::TopicTitleEmpty,
        documentation: "name (String, required): Topic name, 1-128 characters (TDLib cuts a longer name to 128 and refuses an empty one)",
        methods: &["createForumTopic", "editForumTopic"],
        code: 400,
        description: "Bad Request: title must be non-empty",
    },
    Rule {
        id: RuleId::ThreadNotFound,
        documentation: "message_thread_id (Integer, optional): Unique identifier for the target message thread (topic) of a forum; for forum supergroups and private chats of bots with forum topic mode enabled only",
        methods: &["sendMessage", "sendDocument", "sendChatAction"],
        code: 400,
        description: "Bad Request: message thread not found",
    },
    Rule {
        id: RuleId::TopicClosed,
        documentation: "closeForumTopic: Use this method to close an open topic in a forum supergroup chat (nothing more can be sent into it: TOPIC_CLOSED)",
        methods: SEND_METHODS,
        code: 400,
        description: "Bad Request: TOPIC_CLOSED",
    },
    Rule {
        id: RuleId::TopicIdInvalid,
        documentation: "message_thread_id (Integer, required): Unique identifier for the target message thread of the forum topic",
        methods: TOPIC_METHODS,
        code: 400,
        description: "Bad Request: TOPIC_ID_INVALID",
    },
    Rule {
        id: RuleId::TopicNotModified,
        documentation: "editForumTopic / closeForumTopic / reopenForumTopic: a change that changes nothing is refused (TOPIC_NOT_MODIFIED)",
        methods: &["editForumTopic", "closeForumTopic", "reopenForumTopic"],
        code: 400,
        description: "Bad Request: TOPIC_NOT_MODIFIED",
    },
    Rule {
        id: RuleId::DraftPeerInvalid,
        documentation: "sendMessageDraft chat_id (Integer, required): Unique identifier for the target private chat (observed answer for a group: TEXTDRAFT_PEER_INVALID)",
        methods: &["sendMessageDraft"],
        code: 400,
        description: "Bad Request: TEXTDRAFT_PEER_INVALID",
    },
    Rule {
        id: RuleId::DraftIdInvalid,
        documentation: "sendMessageDraft draft_id (Integer, required): Unique identifier of the message draft; must be non-zero (answer assumed)",
        methods: &["sendMessageDraft"],
        code: 400,
        description: "Bad Request: draft_id must be non-zero",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_one_row() {
        assert_eq!(RuleId::ALL.len(), RULES.len());
        for &id in RuleId::ALL {
            assert_eq!(RULES.iter().filter(|r| r.id == id).count(), 1, "{id:?}");
        }
    }
}
