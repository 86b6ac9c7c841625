//! A fake Telegram Bot API for tests: a real HTTP server on a loopback port
//! that answers like `api.telegram.org` (`POST /bot{token}/{method}`), keeps
//! a per-chat store of the bot's messages with edits applied, and records
//! every call so a test can assert what the user would have seen.
//!
//! ```no_run
//! # async fn demo() {
//! use remoteagent_testkit::telegram::FakeTelegram;
//! let tg = FakeTelegram::start().await;
//! // Point the code under test at `tg.api_base()` with `tg.token()`, then:
//! let sent = tg.calls_of("sendMessage");
//! let seen = tg.messages(42);
//! # let _ = (sent, seen);
//! # }
//! ```
//!
//! What it checks like Telegram does: the token in the path (401 otherwise),
//! the HTML parse mode (unknown or unbalanced tags are a 400 "can't parse
//! entities"), empty text, text longer than 4096 characters after entity
//! parsing, and edits that change nothing ("message is not modified");
//! for `sendDocument`, an empty file, a file over 50 MB and a caption over
//! 1024 characters (HTML checked as for messages).
//! Unlike Telegram, it does not trim leading and trailing whitespace from a
//! message's text, so a test can compare output byte for byte.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Telegram's limit on a message's text, in characters after entity parsing.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// Telegram's limit on a caption, in characters after entity parsing.
pub const MAX_CAPTION_CHARS: usize = 1024;
/// Telegram's limit on a file a bot uploads (50 MB).
pub const MAX_UPLOAD_BYTES: usize = 50_000_000;

/// The bot token the fake accepts (any other token gets 401 Unauthorized).
const FAKE_TOKEN: &str = "7000000001:AAFakeTelegramTokenForTestsOnly_xyz";
/// The fake bot's own user id (`getMe`, `from` of its messages).
pub const BOT_ID: i64 = 7_000_000_001;
/// The fake bot's username.
pub const BOT_USERNAME: &str = "remoteagent_test_bot";

/// One recorded Bot API call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method name as sent (`sendMessage`, `editMessageText`, …).
    pub method: String,
    /// The request's parameters as JSON (form and multipart bodies are
    /// converted; a multipart file becomes `{"file_name": …, "size": …}`).
    pub body: Value,
    /// When the fake received it.
    pub at: tokio::time::Instant,
    /// The HTTP status the fake answered (200, 400, 429, …).
    pub status: u16,
    /// The JSON the fake answered.
    pub response: Value,
}

impl Call {
    /// Whether the fake answered `{"ok": true}`.
    pub fn ok(&self) -> bool {
        self.status == 200
    }

    /// `chat_id` of the call, if it has a numeric one.
    pub fn chat_id(&self) -> Option<i64> {
        as_i64(self.body.get("chat_id")?)
    }

    /// `message_id` of the call (edits, deletes), if any.
    pub fn message_id(&self) -> Option<i64> {
        as_i64(self.body.get("message_id")?)
    }

    /// `text` of the call (sendMessage, editMessageText), if any.
    pub fn text(&self) -> Option<&str> {
        self.body.get("text")?.as_str()
    }
}

/// A message in a chat as it stands now (with edits applied).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMessage {
    pub message_id: i64,
    /// The text as the user sees it: HTML entities decoded, tags stripped.
    pub text: String,
    /// The raw text as sent (HTML).
    pub html: String,
    /// `reply_markup` as sent, if any (`None` once an edit removed it).
    pub reply_markup: Option<Value>,
    /// How many successful edits the message received.
    pub edits: u32,
}

/// A document sent with `sendDocument`.
#[derive(Clone, PartialEq)]
pub struct FakeDocument {
    pub chat_id: i64,
    pub message_id: i64,
    pub file_name: String,
    pub size: usize,
    /// The caption as the user sees it (HTML decoded, tags stripped).
    pub caption: Option<String>,
    /// The caption as sent.
    pub caption_html: Option<String>,
    /// The uploaded file's bytes (empty when a `file_id` was sent instead).
    pub bytes: Vec<u8>,
}

/// The bytes can be large: Debug shows their size.
impl std::fmt::Debug for FakeDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDocument")
            .field("chat_id", &self.chat_id)
            .field("message_id", &self.message_id)
            .field("file_name", &self.file_name)
            .field("size", &self.size)
            .field("caption", &self.caption)
            .field("bytes", &format_args!("{} bytes", self.bytes.len()))
            .finish()
    }
}

#[derive(Default)]
struct Chat {
    next_id: i64,
    messages: Vec<FakeMessage>,
}

struct Failure {
    remaining: u32,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    chats: HashMap<i64, Chat>,
    documents: Vec<FakeDocument>,
    failures: HashMap<String, VecDeque<Failure>>,
    webhook: Option<(String, Option<String>)>,
}

type Shared = Arc<Mutex<Inner>>;

/// The running fake. The server stops when this is dropped.
pub struct FakeTelegram {
    addr: SocketAddr,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(inner: &Shared) -> MutexGuard<'_, Inner> {
    // A panicking test thread may poison the lock; the data is still usable.
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeTelegram {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let inner: Shared = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Telegram server");
        let addr = listener.local_addr().expect("fake Telegram address");
        let app = axum::Router::new()
            .fallback(handle)
            // Uploads up to Telegram's limit plus the form's overhead, so
            // that the fake can answer an oversized file as Telegram does.
            .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1024 * 1024))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTelegram { addr, inner, task }
    }

    /// `http://127.0.0.1:PORT`, to use in place of `https://api.telegram.org`.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bot token the fake accepts.
    pub fn token(&self) -> String {
        FAKE_TOKEN.to_string()
    }

    /// Every call so far, in order of arrival.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner).calls.clone()
    }

    /// The calls of one method, in order.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        lock(&self.inner)
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Waits until `pred` holds for the recorded calls; false on timeout.
    pub async fn wait_for(&self, pred: impl Fn(&[Call]) -> bool, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // The lock is released before `pred` runs: a predicate may look
            // at the fake again (`messages`), which takes the same lock.
            let calls = lock(&self.inner).calls.clone();
            if pred(&calls) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `pred` holds for a chat's messages; false on timeout.
    pub async fn wait_for_messages(
        &self,
        chat_id: i64,
        pred: impl Fn(&[FakeMessage]) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.messages(chat_id)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A chat's current messages (deleted ones removed), oldest first.
    pub fn messages(&self, chat_id: i64) -> Vec<FakeMessage> {
        lock(&self.inner)
            .chats
            .get(&chat_id)
            .map(|c| c.messages.clone())
            .unwrap_or_default()
    }

    /// One message of a chat, if it exists.
    pub fn message(&self, chat_id: i64, message_id: i64) -> Option<FakeMessage> {
        self.messages(chat_id)
            .into_iter()
            .find(|m| m.message_id == message_id)
    }

    /// Documents sent with `sendDocument`, oldest first.
    pub fn documents(&self) -> Vec<FakeDocument> {
        lock(&self.inner).documents.clone()
    }

    /// The documents sent to one chat, oldest first.
    pub fn documents_in(&self, chat_id: i64) -> Vec<FakeDocument> {
        lock(&self.inner)
            .documents
            .iter()
            .filter(|d| d.chat_id == chat_id)
            .cloned()
            .collect()
    }

    /// The webhook set by `setWebhook`: `(url, secret_token)`.
    pub fn webhook(&self) -> Option<(String, Option<String>)> {
        lock(&self.inner).webhook.clone()
    }

    /// The next `n` calls of `method` answer 429 Too Many Requests with
    /// `parameters.retry_after = retry_after`.
    pub fn fail_next(&self, method: &str, n: u32, retry_after: u64) {
        self.push_failure(method, n, Some(retry_after));
    }

    /// Like [`FakeTelegram::fail_next`], but the 429 carries no
    /// `retry_after` (clients must pick their own back-off).
    pub fn fail_next_without_retry_after(&self, method: &str, n: u32) {
        self.push_failure(method, n, None);
    }

    fn push_failure(&self, method: &str, n: u32, retry_after: Option<u64>) {
        if n == 0 {
            return;
        }
        lock(&self.inner)
            .failures
            .entry(method.to_string())
            .or_default()
            .push_back(Failure {
                remaining: n,
                retry_after,
            });
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A Bot API answer: HTTP status and JSON body.
struct Answer(u16, Value);

impl Answer {
    fn ok(result: Value) -> Self {
        Answer(200, json!({"ok": true, "result": result}))
    }

    fn error(code: u16, description: impl Into<String>) -> Self {
        Answer(
            code,
            json!({"ok": false, "error_code": code, "description": description.into()}),
        )
    }

    fn bad_request(description: &str) -> Self {
        Self::error(400, format!("Bad Request: {description}"))
    }
}

async fn handle(State(inner): State<Shared>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let method = method.to_string();
    let token_ok = token == FAKE_TOKEN;
    let (body, files) = match read_params(req).await {
        Ok(params) => params,
        Err(description) => {
            let answer = Answer::bad_request(&description);
            return record(&inner, method, Value::Null, answer);
        }
    };
    if !token_ok {
        return record(&inner, method, body, Answer::error(401, "Unauthorized"));
    }
    let answer = {
        let mut state = lock(&inner);
        match take_failure(&mut state, &method) {
            Some(answer) => answer,
            None => dispatch(&mut state, &method, &body, files),
        }
    };
    record(&inner, method, body, answer)
}

fn record(inner: &Shared, method: String, body: Value, answer: Answer) -> Response {
    let Answer(status, response) = answer;
    lock(inner).calls.push(Call {
        method,
        body,
        at: tokio::time::Instant::now(),
        status,
        response: response.clone(),
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(response)).into_response()
}

fn take_failure(state: &mut Inner, method: &str) -> Option<Answer> {
    let queue = state.failures.get_mut(method)?;
    let failure = queue.front_mut()?;
    let retry_after = failure.retry_after;
    failure.remaining = failure.remaining.saturating_sub(1);
    if failure.remaining == 0 {
        queue.pop_front();
    }
    let mut body = json!({
        "ok": false,
        "error_code": 429,
        "description": match retry_after {
            Some(n) => format!("Too Many Requests: retry after {n}"),
            None => "Too Many Requests".to_string(),
        },
    });
    if let Some(n) = retry_after {
        body["parameters"] = json!({ "retry_after": n });
    }
    Some(Answer(429, body))
}

/// Files of a multipart request by field name.
type Files = HashMap<String, Vec<u8>>;

/// Reads the request's parameters (JSON, form or multipart; plus the query
/// string) as one JSON object, and the files of a multipart body.
async fn read_params(req: Request) -> Result<(Value, Files), String> {
    let mut files = Files::new();
    let params = read_params_into(req, &mut files).await?;
    Ok((params, files))
}

async fn read_params_into(req: Request, files: &mut Files) -> Result<Value, String> {
    let mut params = serde_json::Map::new();
    if let Some(query) = req.uri().query() {
        for (k, v) in form_pairs(query.as_bytes()) {
            params.insert(k, Value::String(v));
        }
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| format!("bad multipart body: {e}"))?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| format!("bad multipart body: {e}"))?
        {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let data = field
                .bytes()
                .await
                .map_err(|e| format!("bad multipart body: {e}"))?;
            let value = match file_name {
                Some(file_name) => {
                    let value = json!({"file_name": file_name, "size": data.len()});
                    files.insert(name.clone(), data.to_vec());
                    value
                }
                None => Value::String(String::from_utf8_lossy(&data).into_owned()),
            };
            params.insert(name, value);
        }
        return Ok(Value::Object(params));
    }
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
        .await
        .map_err(|e| format!("reading body: {e}"))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(params));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in form_pairs(&bytes) {
            params.insert(k, Value::String(v));
        }
        return Ok(Value::Object(params));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => {
            params.extend(map);
            Ok(Value::Object(params))
        }
        Ok(_) => Err("request body must be a JSON object".into()),
        Err(e) => Err(format!("can't parse JSON body: {e}")),
    }
}

fn form_pairs(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let k = percent_decode(it.next().unwrap_or_default());
            let v = percent_decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len() => {
                let hex = std::str::from_utf8(&input[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `reply_markup` may come as an object (JSON bodies) or as a JSON string
/// (form bodies).
fn reply_markup(body: &Value) -> Result<Option<Value>, Answer> {
    match body.get("reply_markup") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s)
            .map(Some)
            .map_err(|_| Answer::bad_request("can't parse reply keyboard markup JSON object")),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(Answer::bad_request(
            "can't parse reply keyboard markup JSON object",
        )),
    }
}

/// Validates and renders a message text the way Telegram does for the
/// parse mode in `body`; returns `(visible text, raw text)`.
fn message_text(body: &Value) -> Result<(String, String), Answer> {
    let raw = match body.get("text") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(Answer::bad_request("message text is empty")),
    };
    let html = body
        .get("parse_mode")
        .and_then(Value::as_str)
        .is_some_and(|m| m.eq_ignore_ascii_case("html"));
    let visible = if html {
        html_to_text(&raw)
            .map_err(|e| Answer::bad_request(&format!("can't parse entities: {e}")))?
    } else {
        raw.clone()
    };
    if visible.trim().is_empty() {
        return Err(Answer::bad_request("message text is empty"));
    }
    if visible.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Answer::bad_request("message is too long"));
    }
    Ok((visible, raw))
}

fn chat_json(chat_id: i64) -> Value {
    if chat_id < 0 {
        json!({"id": chat_id, "type": "supergroup", "title": "Test group"})
    } else {
        json!({"id": chat_id, "type": "private", "first_name": "Test"})
    }
}

fn message_json(chat_id: i64, m: &FakeMessage) -> Value {
    let mut v = json!({
        "message_id": m.message_id,
        "from": {"id": BOT_ID, "is_bot": true, "first_name": "RemoteAgent", "username": BOT_USERNAME},
        "chat": chat_json(chat_id),
        "date": now_secs(),
        "text": m.text,
    });
    if m.edits > 0 {
        v["edit_date"] = json!(now_secs());
    }
    if let Some(markup) = &m.reply_markup {
        v["reply_markup"] = markup.clone();
    }
    v
}

fn dispatch(state: &mut Inner, method: &str, body: &Value, files: Files) -> Answer {
    match dispatch_inner(state, method, body, files) {
        Ok(answer) | Err(answer) => answer,
    }
}

fn require_chat(body: &Value) -> Result<i64, Answer> {
    body.get("chat_id")
        .and_then(as_i64)
        .ok_or_else(|| Answer::bad_request("chat not found"))
}

fn require_message_id(body: &Value) -> Result<i64, Answer> {
    body.get("message_id")
        .and_then(as_i64)
        .ok_or_else(|| Answer::bad_request("message identifier is not specified"))
}

fn dispatch_inner(
    state: &mut Inner,
    method: &str,
    body: &Value,
    mut files: Files,
) -> Result<Answer, Answer> {
    match method {
        "getMe" => Ok(Answer::ok(json!({
            "id": BOT_ID,
            "is_bot": true,
            "first_name": "RemoteAgent",
            "username": BOT_USERNAME,
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
        }))),
        "sendMessage" => {
            let chat_id = require_chat(body)?;
            let (text, html) = message_text(body)?;
            let reply_markup = reply_markup(body)?;
            let chat = state.chats.entry(chat_id).or_default();
            chat.next_id += 1;
            let message = FakeMessage {
                message_id: chat.next_id,
                text,
                html,
                reply_markup,
                edits: 0,
            };
            let result = message_json(chat_id, &message);
            chat.messages.push(message);
            Ok(Answer::ok(result))
        }
        "editMessageText" => {
            let chat_id = require_chat(body)?;
            let message_id = require_message_id(body)?;
            let (text, html) = message_text(body)?;
            let reply_markup = reply_markup(body)?;
            let message = state
                .chats
                .get_mut(&chat_id)
                .and_then(|c| c.messages.iter_mut().find(|m| m.message_id == message_id))
                .ok_or_else(|| Answer::bad_request("message to edit not found"))?;
            if message.html == html && message.reply_markup == reply_markup {
                return Err(Answer::bad_request(
                    "message is not modified: specified new message content and reply markup \
                     are exactly the same as a current content and reply markup of the message",
                ));
            }
            message.text = text;
            message.html = html;
            message.reply_markup = reply_markup;
            message.edits += 1;
            Ok(Answer::ok(message_json(chat_id, message)))
        }
        "editMessageReplyMarkup" => {
            let chat_id = require_chat(body)?;
            let message_id = require_message_id(body)?;
            let reply_markup = reply_markup(body)?;
            let message = state
                .chats
                .get_mut(&chat_id)
                .and_then(|c| c.messages.iter_mut().find(|m| m.message_id == message_id))
                .ok_or_else(|| Answer::bad_request("message to edit not found"))?;
            if message.reply_markup == reply_markup {
                return Err(Answer::bad_request(
                    "message is not modified: specified new message content and reply markup \
                     are exactly the same as a current content and reply markup of the message",
                ));
            }
            message.reply_markup = reply_markup;
            message.edits += 1;
            Ok(Answer::ok(message_json(chat_id, message)))
        }
        "deleteMessage" => {
            let chat_id = require_chat(body)?;
            let message_id = require_message_id(body)?;
            let chat = state
                .chats
                .get_mut(&chat_id)
                .ok_or_else(|| Answer::bad_request("message to delete not found"))?;
            let before = chat.messages.len();
            chat.messages.retain(|m| m.message_id != message_id);
            if chat.messages.len() == before {
                return Err(Answer::bad_request("message to delete not found"));
            }
            Ok(Answer::ok(json!(true)))
        }
        "sendDocument" => {
            let chat_id = require_chat(body)?;
            let (file_name, size) = match body.get("document") {
                Some(Value::Object(doc)) => (
                    doc.get("file_name")
                        .and_then(Value::as_str)
                        .unwrap_or("document")
                        .to_string(),
                    doc.get("size").and_then(Value::as_u64).unwrap_or(0) as usize,
                ),
                Some(Value::String(file_id)) => (file_id.clone(), 0),
                _ => return Err(Answer::bad_request("there is no document in the request")),
            };
            let bytes = files.remove("document").unwrap_or_default();
            if matches!(body.get("document"), Some(Value::Object(_))) {
                if bytes.is_empty() {
                    return Err(Answer::bad_request("file must be non-empty"));
                }
                if bytes.len() > MAX_UPLOAD_BYTES {
                    return Err(Answer::error(413, "Request Entity Too Large"));
                }
            }
            let caption_html = body
                .get("caption")
                .and_then(Value::as_str)
                .map(str::to_string);
            let caption = match &caption_html {
                None => None,
                Some(raw) => {
                    let html = body
                        .get("parse_mode")
                        .and_then(Value::as_str)
                        .is_some_and(|m| m.eq_ignore_ascii_case("html"));
                    let visible = if html {
                        html_to_text(raw).map_err(|e| {
                            Answer::bad_request(&format!("can't parse entities: {e}"))
                        })?
                    } else {
                        raw.clone()
                    };
                    if visible.chars().count() > MAX_CAPTION_CHARS {
                        return Err(Answer::bad_request("message caption is too long"));
                    }
                    Some(visible)
                }
            };
            let chat = state.chats.entry(chat_id).or_default();
            chat.next_id += 1;
            let message_id = chat.next_id;
            state.documents.push(FakeDocument {
                chat_id,
                message_id,
                file_name: file_name.clone(),
                size,
                caption: caption.clone(),
                caption_html,
                bytes,
            });
            let mut result = json!({
                "message_id": message_id,
                "from": {"id": BOT_ID, "is_bot": true, "first_name": "RemoteAgent", "username": BOT_USERNAME},
                "chat": chat_json(chat_id),
                "date": now_secs(),
                "document": {"file_name": file_name, "file_size": size, "file_id": format!("doc{message_id}"), "file_unique_id": format!("u{message_id}")},
            });
            if let Some(caption) = caption {
                result["caption"] = json!(caption);
            }
            Ok(Answer::ok(result))
        }
        "answerCallbackQuery" => {
            if body
                .get("callback_query_id")
                .is_none_or(|v| v.as_str().is_some_and(str::is_empty))
            {
                return Err(Answer::bad_request(
                    "query is too old and response timeout expired or query ID is invalid",
                ));
            }
            Ok(Answer::ok(json!(true)))
        }
        "setWebhook" => {
            let url = body
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let secret = body
                .get("secret_token")
                .and_then(Value::as_str)
                .map(str::to_string);
            state.webhook = if url.is_empty() {
                None
            } else {
                Some((url, secret))
            };
            Ok(Answer::ok(json!(true)))
        }
        "deleteWebhook" => {
            state.webhook = None;
            Ok(Answer::ok(json!(true)))
        }
        _ => Ok(Answer::ok(json!(true))),
    }
}

/// Tags Telegram's HTML parse mode accepts.
const ALLOWED_TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
    "tg-time",
];

/// Converts Telegram HTML to the text a user sees, rejecting what Telegram
/// rejects: unknown tags, unbalanced tags, a `<` that starts no tag. A `&`
/// that starts no known entity is kept literally, as Telegram does.
pub fn html_to_text(html: &str) -> Result<String, String> {
    let mut out = String::with_capacity(html.len());
    let mut stack: Vec<String> = Vec::new();
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < html.len() {
        let rest = &html[i..];
        match bytes[i] {
            b'<' => {
                let Some(end) = rest.find('>') else {
                    return Err(format!(
                        "Can't find end of the entity starting at byte offset {i}"
                    ));
                };
                let inner = &rest[1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match stack.pop() {
                        Some(open) if name.is_empty() || open == name => {}
                        _ => return Err(format!("Unexpected end tag at byte offset {i}")),
                    }
                } else {
                    let name = inner
                        .split(|c: char| c.is_ascii_whitespace())
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    if !ALLOWED_TAGS.contains(&name.as_str()) {
                        return Err(format!(
                            "Unsupported start tag \"{name}\" at byte offset {i}"
                        ));
                    }
                    stack.push(name);
                }
                i += end + 1;
            }
            b'&' => {
                let (decoded, len) = decode_entity(rest).unwrap_or(('&', 1));
                out.push(decoded);
                i += len;
            }
            _ => {
                let ch = rest.chars().next().unwrap_or_default();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{open}\""
        ));
    }
    Ok(out)
}

/// Decodes the entity at the start of `s` (`&lt;`, `&#60;`, `&#x3C;`, …):
/// the character and the entity's length in bytes.
fn decode_entity(s: &str) -> Option<(char, usize)> {
    let end = s.get(..12).unwrap_or(s).find(';')?;
    let name = &s[1..end];
    let ch = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((ch, end + 1))
}

/// Builders of webhook updates shaped like Telegram's.
pub mod updates {
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

    /// A press on an inline button with `data` under the bot's message
    /// `message_id` in private chat `chat_id`.
    pub fn callback(
        update_id: i64,
        user_id: i64,
        chat_id: i64,
        message_id: i64,
        data: &str,
    ) -> Value {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_decoded_and_checked_like_telegram() {
        assert_eq!(
            html_to_text("<b>a</b> &lt;x&gt; &amp; &#233;&#x4E2D; R&D").unwrap(),
            "a <x> & é中 R&D"
        );
        assert!(html_to_text("a < b").is_err());
        assert!(html_to_text("<b>open").is_err());
        assert!(html_to_text("<script>x</script>").is_err());
        assert!(html_to_text("<b>x</i>").is_err());
        assert_eq!(html_to_text("<a href=\"https://x\">l</a>").unwrap(), "l");
    }

    #[test]
    fn form_bodies_decode() {
        assert_eq!(
            form_pairs(b"chat_id=42&text=a+b%26c%"),
            vec![
                ("chat_id".to_string(), "42".to_string()),
                ("text".to_string(), "a b&c%".to_string())
            ]
        );
    }
}
