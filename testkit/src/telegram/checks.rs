//! The pure checks the fake server applies with the table of
//! [`super::rules`]: message texts, captions, reply markups, edits and
//! uploads, each as Telegram does it. No I/O, so property tests (the
//! cloud's pager) call them without a server.

use serde_json::Value;

use super::formatted::{self, EmptyText, Rendered};
use super::html;
use super::rules::{
    MAX_CALLBACK_DATA_BYTES, MAX_CAPTION_CHARS, MAX_MESSAGE_CHARS, MAX_RAW_TEXT_BYTES,
    MAX_UPLOAD_BYTES, Refusal, RuleId,
};

/// Length as Telegram counts it: UTF-16 code units ("🚀" is 2).
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// What a send asks to reply to (`reply_parameters`, or the older
/// `reply_to_message_id` and `allow_sending_without_reply`, which the Bot
/// API still reads when `reply_parameters` is absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    pub message_id: i64,
    /// The chat of the message replied to, when another than the send's.
    pub chat_id: Option<i64>,
    /// Send without the reply when its message is not found (never for a
    /// reply in another chat).
    pub allow_sending_without_reply: bool,
}

/// Reads a send's reply parameters as the Bot API server does: a
/// `reply_parameters` that is not JSON, or not an object, is refused.
pub fn parse_reply_parameters(body: &Value) -> Result<Option<ReplyTo>, Refusal> {
    let params = match body.get("reply_parameters") {
        None => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(
            serde_json::from_str::<Value>(s)
                .map_err(|_| Refusal::of(RuleId::ReplyParametersNotJson))?,
        ),
        Some(v) => Some(v.clone()),
    };
    let Some(params) = params else {
        // The parameters of Bot API 6 and before, still accepted.
        let Some(message_id) = body.get("reply_to_message_id").and_then(int) else {
            return Ok(None);
        };
        let allow = body
            .get("allow_sending_without_reply")
            .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
        return Ok(Some(ReplyTo {
            message_id,
            chat_id: None,
            allow_sending_without_reply: allow,
        }));
    };
    let Value::Object(params) = params else {
        return Err(Refusal::of(RuleId::ReplyParametersNotObject));
    };
    // Not rows of the table: malformed fields the code under test never
    // sends, answered in the Bot API's words for a field it cannot read.
    let message_id = params.get("message_id").and_then(int).ok_or_else(|| {
        Refusal::unlisted(400, "Bad Request: can't find field \"message_id\"".into())
    })?;
    let allow = match params.get("allow_sending_without_reply") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(Refusal::unlisted(
                400,
                "Bad Request: field \"allow_sending_without_reply\" must be of type Boolean".into(),
            ));
        }
    };
    Ok(Some(ReplyTo {
        message_id,
        chat_id: params.get("chat_id").and_then(int),
        allow_sending_without_reply: allow,
    }))
}

/// A number, or a text holding one (form bodies send text).
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
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

/// Checks a draft's text (`sendMessageDraft`): as a message's, except
/// that an empty text is allowed (Telegram shows "Thinking…" for it).
pub fn check_draft_text(text: &str, parse_mode: Option<&str>) -> Result<Rendered, Refusal> {
    let rendered = render(text, parse_mode, true)?;
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
    use crate::telegram::rules::RuleId;
    use serde_json::json;

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
    fn reply_parameters_are_read_as_the_bot_api_reads_them() {
        let to = |message_id, allow| ReplyTo {
            message_id,
            chat_id: None,
            allow_sending_without_reply: allow,
        };
        assert_eq!(parse_reply_parameters(&json!({})), Ok(None));
        assert_eq!(
            parse_reply_parameters(&json!({"reply_parameters": ""})),
            Ok(None)
        );
        assert_eq!(
            parse_reply_parameters(&json!({"reply_parameters": {"message_id": 7}})),
            Ok(Some(to(7, false)))
        );
        assert_eq!(
            parse_reply_parameters(
                &json!({"reply_parameters": "{\"message_id\":7,\"allow_sending_without_reply\":true}"})
            ),
            Ok(Some(to(7, true)))
        );
        assert_eq!(
            parse_reply_parameters(
                &json!({"reply_to_message_id": "7", "allow_sending_without_reply": "true"})
            ),
            Ok(Some(to(7, true)))
        );
        for (bad, rule) in [
            (json!("{"), RuleId::ReplyParametersNotJson),
            (json!(null), RuleId::ReplyParametersNotObject),
            (json!([7]), RuleId::ReplyParametersNotObject),
            (json!("7"), RuleId::ReplyParametersNotObject),
        ] {
            assert_eq!(
                parse_reply_parameters(&json!({"reply_parameters": bad}))
                    .unwrap_err()
                    .rule,
                Some(rule),
                "{bad}"
            );
        }
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
