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
//! It is as strict as Telegram, always: every refusal of [`rules::RULES`]
//! (empty or over-long texts, HTML that does not parse, `callback_data`
//! over 64 bytes, "message is not modified", a user who blocked the bot,
//! …) is answered with Telegram's code and exact `description`, and a
//! message is stored as Telegram stores it: its text cleaned and trimmed
//! ([`FakeMessage::text`]), its entities in UTF-16 offsets.
//!
//! * [`rules`]: the table of refusals and the pure checks (usable without a
//!   server, e.g. in property tests).
//! * [`updates`]: webhook updates shaped like Telegram's.
//! * `html`, `formatted`: the HTML parse mode and Telegram's text cleanup.
//! * `server`: the HTTP side: one lock for the store and the call log.
//! * `files`: files users send (`getFile`, the download), stored with
//!   [`FakeTelegram::add_file`].
//! * `drafts`: `sendMessageDraft`, recorded apart from the messages
//!   ([`FakeTelegram::drafts`]): a draft is ephemeral and never stored in
//!   the chat.
//! * `polling`: `getUpdates` (offset, limit, long poll, 409s) over the
//!   updates a test pushes with [`FakeTelegram::push_update`].
//! * `topics`: forum topics (`createForumTopic` …, `message_thread_id`),
//!   in the chats a test made forums.

mod answer;
pub mod checks;
mod drafts;
mod files;
mod formatted;
mod html;
mod params;
mod polling;
pub mod rules;
mod server;
mod topics;
pub mod updates;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use serde_json::Value;

pub use checks::{
    ReplyTo, check_caption, check_edit, check_message_text, check_reply_markup, check_upload,
    parse_reply_markup, parse_reply_parameters, utf16_len,
};
pub use drafts::FakeDraft;
pub use files::{FakeFile, MAX_DOWNLOAD_BYTES};
pub use formatted::{Entity, Rendered};
pub use html::html_to_text;
pub use rules::{
    MAX_CAPTION_CHARS, MAX_MESSAGE_CHARS, MAX_UPLOAD_BYTES, RULES, Refusal, Rule, RuleId,
};
pub use topics::{FakeTopic, MAX_TOPIC_NAME_CHARS};

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

    /// `message_thread_id` of the call (the forum topic), if any.
    pub fn thread(&self) -> Option<i64> {
        as_i64(self.body.get("message_thread_id")?)
    }

    /// `message_id` of the call (edits, deletes), if any.
    pub fn message_id(&self) -> Option<i64> {
        as_i64(self.body.get("message_id")?)
    }

    /// `text` of the call (sendMessage, editMessageText), if any: the raw
    /// text as sent, not as shown.
    pub fn text(&self) -> Option<&str> {
        self.body.get("text")?.as_str()
    }

    /// The message a send asked to reply to (`reply_parameters.message_id`
    /// or the older `reply_to_message_id`), whether or not it was found.
    pub fn reply_to_message_id(&self) -> Option<i64> {
        checks::parse_reply_parameters(&self.body)
            .ok()
            .flatten()
            .map(|r| r.message_id)
    }

    /// The `description` of a refused call.
    pub fn description(&self) -> Option<&str> {
        self.response.get("description")?.as_str()
    }
}

/// A message in a chat as it stands now (with edits applied).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMessage {
    pub message_id: i64,
    /// The text as Telegram stores and shows it: HTML parsed (entities
    /// decoded, tags stripped), cleaned, leading and trailing spaces and
    /// newlines trimmed.
    pub text: String,
    /// The formatting of `text` (offsets in UTF-16 code units).
    pub entities: Vec<Entity>,
    /// The raw text as sent (HTML).
    pub html: String,
    /// `reply_markup` as sent, if any (`None` once an edit removed it, or
    /// when it was an empty inline keyboard).
    pub reply_markup: Option<Value>,
    /// How many successful edits the message received.
    pub edits: u32,
    /// The message this one replies to (Telegram's `reply_to_message`),
    /// in the same chat; `None` when it replies to none, or was sent
    /// without its reply because that message was gone.
    pub reply_to: Option<i64>,
    /// The forum topic it was sent into (`message_thread_id`), if any.
    pub thread: Option<i64>,
}

impl FakeMessage {
    /// What Telegram compares for "message is not modified".
    pub fn rendered(&self) -> Rendered {
        Rendered {
            text: self.text.clone(),
            entities: self.entities.clone(),
        }
    }
}

/// A document sent with `sendDocument`.
#[derive(Clone, PartialEq)]
pub struct FakeDocument {
    pub chat_id: i64,
    pub message_id: i64,
    pub file_name: String,
    pub size: usize,
    /// The caption as the user sees it (HTML parsed, cleaned, trimmed);
    /// `None` when Telegram shows none.
    pub caption: Option<String>,
    /// The formatting of `caption`.
    pub caption_entities: Vec<Entity>,
    /// The caption as sent.
    pub caption_html: Option<String>,
    /// The uploaded file's bytes (empty when a `file_id` was sent instead).
    pub bytes: Vec<u8>,
    /// The message it replies to, as for [`FakeMessage::reply_to`].
    pub reply_to: Option<i64>,
    /// The forum topic it was sent into, as for [`FakeMessage::thread`].
    pub thread: Option<i64>,
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
            .field("reply_to", &self.reply_to)
            .field("thread", &self.thread)
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

/// Everything the fake knows, behind one lock: the store and the call log
/// change together (see `server::handle`).
#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    chats: HashMap<i64, Chat>,
    documents: Vec<FakeDocument>,
    failures: HashMap<String, VecDeque<Failure>>,
    webhook: Option<(String, Option<String>)>,
    /// Chats whose user blocked the bot.
    blocked: HashSet<i64>,
    /// Incoming updates not yet confirmed by a `getUpdates` offset.
    updates: VecDeque<Value>,
    /// The `update_id` of the last update pushed.
    last_update_id: i64,
    /// Bumped by each `getUpdates`: a waiting poll that sees another
    /// number was overtaken.
    poll_generation: u64,
    /// `getUpdates` calls waiting now.
    waiting_polls: usize,
    /// Wakes waiting polls (an update pushed, another poll begun).
    wake: Arc<tokio::sync::Notify>,
    /// Files users sent (`getFile`, downloads).
    files: Vec<files::StoredFile>,
    /// Numbers the files.
    next_file: u64,
    /// The file paths downloaded, in order.
    downloads: Vec<String>,
    /// Forums and their topics.
    topics: topics::Topics,
    /// Drafts shown (`sendMessageDraft`), oldest first.
    drafts: Vec<FakeDraft>,
    /// Private chats whose drafts are refused ([`FakeTelegram::refuse_drafts`]).
    no_drafts: HashSet<i64>,
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
            .fallback(server::handle)
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

    /// The calls the fake refused (any answer but 200), in order: a test
    /// can assert that nothing was refused, or that each refusal was told.
    pub fn refused_calls(&self) -> Vec<Call> {
        lock(&self.inner)
            .calls
            .iter()
            .filter(|c| !c.ok())
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

    /// The drafts shown in a chat (`sendMessageDraft`), oldest first. They
    /// are never among [`FakeTelegram::messages`]: Telegram does not store
    /// a draft in the chat.
    pub fn drafts(&self, chat_id: i64) -> Vec<FakeDraft> {
        lock(&self.inner)
            .drafts
            .iter()
            .filter(|d| d.chat_id == chat_id)
            .cloned()
            .collect()
    }

    /// Waits until `pred` holds for a chat's drafts; false on timeout.
    pub async fn wait_for_drafts(
        &self,
        chat_id: i64,
        pred: impl Fn(&[FakeDraft]) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.drafts(chat_id)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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

    /// Telegram receives `update` for the bot (a user wrote, pressed a
    /// button): it waits for `getUpdates`, numbered after the last one
    /// pushed (its own `update_id` is replaced). Returns the `update_id`.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let mut state = lock(&self.inner);
        if state.last_update_id == 0 {
            // Ids differ from run to run, as the claims a cloud keeps in a
            // shared Redis outlive a test.
            state.last_update_id = first_update_id();
        }
        state.last_update_id += 1;
        let id = state.last_update_id;
        update["update_id"] = Value::from(id);
        state.updates.push_back(update);
        state.wake.notify_waiters();
        id
    }

    /// The updates pushed and not yet confirmed by a `getUpdates` offset.
    pub fn pending_updates(&self) -> Vec<Value> {
        lock(&self.inner).updates.iter().cloned().collect()
    }

    /// How many `getUpdates` calls are waiting (long polling) now.
    pub fn waiting_polls(&self) -> usize {
        lock(&self.inner).waiting_polls
    }

    /// Sets a webhook as `setWebhook` would (then `getUpdates` is refused
    /// with 409 until `deleteWebhook`).
    pub fn set_webhook(&self, url: &str) {
        lock(&self.inner).webhook = Some((url.to_string(), None));
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

    /// The user of private chat `chat_id` blocks the bot: every send and
    /// edit to the chat is answered 403 "Forbidden: bot was blocked by the
    /// user" until [`FakeTelegram::unblock_chat`].
    pub fn block_chat(&self, chat_id: i64) {
        lock(&self.inner).blocked.insert(chat_id);
    }

    /// From now on, drafts to private chat `chat_id` are refused as in a
    /// chat the method is not open to (400 `TEXTDRAFT_PEER_INVALID`): a
    /// client or account without drafts. Messages and edits still work.
    pub fn refuse_drafts(&self, chat_id: i64) {
        lock(&self.inner).no_drafts.insert(chat_id);
    }

    /// The user unblocks the bot.
    pub fn unblock_chat(&self, chat_id: i64) {
        lock(&self.inner).blocked.remove(&chat_id);
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

/// Where a fake's update ids start: a number below 2^30 (so that a run's
/// ids stay below 2^31, like Telegram's) that differs from fake to fake.
fn first_update_id() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos % (1 << 30)) as i64
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
