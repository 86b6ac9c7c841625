//! The Bot API client: `{api_base}/bot{token}/{method}` over reqwest, or
//! console mode.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::console::Console;
use super::{BotUser, ChatRef, InlineKeyboard, TelegramError};

/// How long to wait when Telegram says 429 without `retry_after`.
const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

/// Telegram's limit on a caption, in characters after entity parsing.
pub const MAX_CAPTION_CHARS: usize = 1024;

/// How long one upload may take: a 50 MB file on a slow link takes minutes,
/// far beyond the 30 s that suit every other call.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The kinds of update the bot reads, for `setWebhook` and `getUpdates`
/// alike.
pub const ALLOWED_UPDATES: &[&str] = &["message", "callback_query"];

/// How much longer than its `timeout` a `getUpdates` long poll may take
/// before the request is given up as lost.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(15);

/// A file to send with `sendDocument`.
#[derive(Clone)]
pub struct Document {
    /// The name the user sees (`output-….txt`).
    pub file_name: String,
    /// HTML caption, at most [`MAX_CAPTION_CHARS`] visible characters.
    pub caption: Option<String>,
    pub source: DocumentSource,
}

/// Where a document's bytes come from.
#[derive(Clone)]
pub enum DocumentSource {
    Bytes(Vec<u8>),
    /// A file read (streamed) at each attempt, so a retried upload never
    /// holds the whole file in memory.
    File(std::path::PathBuf),
}

/// The bytes are output, possibly large: Debug shows their size only.
impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            DocumentSource::Bytes(b) => format!("{} bytes", b.len()),
            DocumentSource::File(p) => p.display().to_string(),
        };
        f.debug_struct("Document")
            .field("file_name", &self.file_name)
            .field("caption", &self.caption)
            .field("source", &source)
            .finish()
    }
}

/// A Bot API client: real HTTP (`{api_base}/bot{token}/{method}`) or console
/// mode, which prints outgoing messages instead (local use, the demo).
#[derive(Clone)]
pub struct Telegram {
    backend: Arc<Backend>,
}

enum Backend {
    Api(Api),
    Console(Console),
}

struct Api {
    http: reqwest::Client,
    api_base: String,
    token: SecretString,
}

/// The API base and the (redacted) token; not the HTTP client's internals.
impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.backend {
            Backend::Api(api) => f
                .debug_struct("Telegram")
                .field("api_base", &api.api_base)
                .field("token", &api.token)
                .finish(),
            Backend::Console(_) => f.write_str("Telegram(console)"),
        }
    }
}

/// Telegram's response envelope.
#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// `getFile`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct FileInfo {
    pub file_id: String,
    #[serde(default)]
    pub file_size: Option<u64>,
    /// Absent when Telegram cannot serve the file (then it cannot be
    /// downloaded).
    #[serde(default)]
    pub file_path: Option<String>,
}

#[derive(Deserialize)]
struct MessageRef {
    message_id: i64,
}

impl Telegram {
    pub fn api(api_base: &str, token: &str) -> Self {
        // Building a client only fails when the TLS backend cannot start;
        // the default client is then no worse and keeps this constructor
        // infallible, as its callers expect.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Telegram {
            backend: Arc::new(Backend::Api(Api {
                http,
                api_base: api_base.trim_end_matches('/').to_string(),
                token: SecretString::from(token),
            })),
        }
    }

    pub fn console() -> Self {
        Telegram {
            backend: Arc::new(Backend::Console(Console::default())),
        }
    }

    /// Whether this client only prints (console mode).
    pub fn is_console(&self) -> bool {
        matches!(&*self.backend, Backend::Console(_))
    }

    /// Returns the new message's id.
    pub async fn send_message(
        &self,
        chat_id: i64,
        html: &str,
        keyboard: Option<&InlineKeyboard>,
    ) -> Result<i64, TelegramError> {
        self.send_message_replying(chat_id, html, keyboard, None)
            .await
    }

    /// [`Telegram::send_message`] as a reply to message `reply_to` of the
    /// same chat when given. A reply whose message is gone (the user
    /// deleted it) goes out as an ordinary message
    /// (`allow_sending_without_reply`), never refused for that.
    pub async fn send_message_replying(
        &self,
        chat_id: i64,
        html: &str,
        keyboard: Option<&InlineKeyboard>,
        reply_to: Option<i64>,
    ) -> Result<i64, TelegramError> {
        self.send_message_to(ChatRef::flat(chat_id), html, keyboard, reply_to)
            .await
    }

    /// [`Telegram::send_message_replying`] into a forum topic of the chat
    /// when `to.thread` is set (`message_thread_id`).
    pub async fn send_message_to(
        &self,
        to: ChatRef,
        html: &str,
        keyboard: Option<&InlineKeyboard>,
        reply_to: Option<i64>,
    ) -> Result<i64, TelegramError> {
        let chat_id = to.chat;
        match &*self.backend {
            Backend::Console(c) => Ok(c.send(chat_id, html, keyboard, reply_to)),
            Backend::Api(api) => {
                let mut body = json!({
                    "chat_id": chat_id,
                    "text": html,
                    "parse_mode": "HTML",
                    "link_preview_options": {"is_disabled": true},
                });
                if let Some(thread) = to.thread {
                    body["message_thread_id"] = json!(thread);
                }
                if let Some(k) = keyboard {
                    body["reply_markup"] = json!(k);
                }
                if let Some(message_id) = reply_to {
                    body["reply_parameters"] = json!({
                        "message_id": message_id,
                        "allow_sending_without_reply": true,
                    });
                }
                let msg: MessageRef = api.call("sendMessage", &body).await?;
                Ok(msg.message_id)
            }
        }
    }

    /// Replaces a message's text and buttons (`None` removes the buttons).
    /// An edit that changes nothing counts as done: the message already
    /// shows what was asked.
    pub async fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        html: &str,
        keyboard: Option<&InlineKeyboard>,
    ) -> Result<(), TelegramError> {
        match &*self.backend {
            Backend::Console(c) => {
                c.edit(chat_id, message_id, html, keyboard);
                Ok(())
            }
            Backend::Api(api) => {
                let mut body = json!({
                    "chat_id": chat_id,
                    "message_id": message_id,
                    "text": html,
                    "parse_mode": "HTML",
                    "link_preview_options": {"is_disabled": true},
                });
                if let Some(k) = keyboard {
                    body["reply_markup"] = json!(k);
                }
                match api.call::<Value>("editMessageText", &body).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_modified() => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Shows `html` as the draft `draft_id` (non-zero) of private chat
    /// `chat_id` (`sendMessageDraft`): an animated preview that Telegram
    /// does not store; the text must be persisted with a `sendMessage`.
    /// Console mode prints nothing (the persisted message is printed).
    pub async fn send_message_draft(
        &self,
        to: ChatRef,
        draft_id: i64,
        html: &str,
    ) -> Result<(), TelegramError> {
        match &*self.backend {
            Backend::Console(_) => Ok(()),
            Backend::Api(api) => {
                let mut body = json!({
                    "chat_id": to.chat,
                    "draft_id": draft_id,
                    "text": html,
                    "parse_mode": "HTML",
                });
                // A draft in a forum topic shows in that topic.
                if let Some(thread) = to.thread {
                    body["message_thread_id"] = json!(thread);
                }
                api.call::<Value>("sendMessageDraft", &body)
                    .await
                    .map(|_| ())
            }
        }
    }

    /// Uploads a document (`multipart/form-data`); returns the new message's
    /// id. A file that cannot be read is a transport error (nothing was sent).
    pub async fn send_document(&self, chat_id: i64, doc: &Document) -> Result<i64, TelegramError> {
        self.send_document_to(ChatRef::flat(chat_id), doc).await
    }

    /// [`Telegram::send_document`] into a forum topic when `to.thread` is set.
    pub async fn send_document_to(
        &self,
        to: ChatRef,
        doc: &Document,
    ) -> Result<i64, TelegramError> {
        let chat_id = to.chat;
        match &*self.backend {
            Backend::Console(c) => {
                let size = match &doc.source {
                    DocumentSource::Bytes(b) => b.len() as u64,
                    DocumentSource::File(p) => {
                        tokio::fs::metadata(p).await.map(|m| m.len()).map_err(|e| {
                            TelegramError::Transport(format!("reading the document: {e}"))
                        })?
                    }
                };
                Ok(c.document(chat_id, &doc.file_name, size, doc.caption.as_deref()))
            }
            Backend::Api(api) => {
                let part = match &doc.source {
                    DocumentSource::Bytes(b) => reqwest::multipart::Part::bytes(b.clone()),
                    DocumentSource::File(path) => {
                        let file = tokio::fs::File::open(path).await.map_err(|e| {
                            TelegramError::Transport(format!("opening the document: {e}"))
                        })?;
                        let len = file.metadata().await.map(|m| m.len()).map_err(|e| {
                            TelegramError::Transport(format!("reading the document: {e}"))
                        })?;
                        reqwest::multipart::Part::stream_with_length(file, len)
                    }
                };
                let part = part
                    .file_name(doc.file_name.clone())
                    .mime_str("text/plain")
                    .map_err(|e| TelegramError::Transport(api.redact(e.to_string())))?;
                let mut form = reqwest::multipart::Form::new()
                    .text("chat_id", chat_id.to_string())
                    .part("document", part);
                if let Some(thread) = to.thread {
                    form = form.text("message_thread_id", thread.to_string());
                }
                if let Some(caption) = &doc.caption {
                    form = form
                        .text("caption", caption.clone())
                        .text("parse_mode", "HTML");
                }
                let msg: MessageRef = api.call_multipart("sendDocument", form).await?;
                Ok(msg.message_id)
            }
        }
    }

    pub async fn delete_message(&self, chat_id: i64, message_id: i64) -> Result<(), TelegramError> {
        match &*self.backend {
            Backend::Console(c) => {
                c.delete(chat_id, message_id);
                Ok(())
            }
            Backend::Api(api) => {
                let body = json!({"chat_id": chat_id, "message_id": message_id});
                api.call::<Value>("deleteMessage", &body).await.map(|_| ())
            }
        }
    }

    pub async fn answer_callback_query(
        &self,
        callback_query_id: &str,
        text: Option<&str>,
    ) -> Result<(), TelegramError> {
        match &*self.backend {
            Backend::Console(c) => {
                c.toast(text);
                Ok(())
            }
            Backend::Api(api) => {
                let mut body = json!({"callback_query_id": callback_query_id});
                if let Some(t) = text {
                    body["text"] = json!(t);
                }
                api.call::<Value>("answerCallbackQuery", &body)
                    .await
                    .map(|_| ())
            }
        }
    }

    pub async fn set_webhook(&self, url: &str, secret_token: &str) -> Result<(), TelegramError> {
        match &*self.backend {
            Backend::Console(_) => Ok(()),
            Backend::Api(api) => {
                let body = json!({
                    "url": url,
                    "secret_token": secret_token,
                    "allowed_updates": ALLOWED_UPDATES,
                });
                api.call::<Value>("setWebhook", &body).await.map(|_| ())
            }
        }
    }

    /// Removes the webhook, so that `getUpdates` works; pending updates are
    /// kept for the poller.
    pub async fn delete_webhook(&self) -> Result<(), TelegramError> {
        match &*self.backend {
            Backend::Console(_) => Ok(()),
            Backend::Api(api) => {
                let body = json!({"drop_pending_updates": false});
                api.call::<Value>("deleteWebhook", &body).await.map(|_| ())
            }
        }
    }

    /// `getUpdates`: the updates from `offset` on (every unconfirmed one
    /// when `None`; the call confirms those before it), waiting up to
    /// `timeout` for one to arrive. Updates come as JSON for the caller to
    /// read one by one, so one it cannot read does not hide the others.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout: Duration,
    ) -> Result<Vec<Value>, TelegramError> {
        match &*self.backend {
            Backend::Console(_) => Err(TelegramError::Api {
                code: 400,
                description: "console mode has no updates to poll".into(),
            }),
            Backend::Api(api) => {
                let mut body = json!({
                    "timeout": timeout.as_secs(),
                    "allowed_updates": ALLOWED_UPDATES,
                });
                if let Some(offset) = offset {
                    body["offset"] = json!(offset);
                }
                api.call_within("getUpdates", &body, timeout + LONG_POLL_MARGIN)
                    .await
            }
        }
    }

    pub async fn get_me(&self) -> Result<BotUser, TelegramError> {
        match &*self.backend {
            Backend::Console(_) => Ok(BotUser {
                id: 0,
                username: Some("console".into()),
                has_topics_enabled: false,
            }),
            Backend::Api(api) => api.call("getMe", &json!({})).await,
        }
    }

    /// `getFile`: where a file a user sent can be downloaded. Telegram
    /// refuses files over 20 MB ("Bad Request: file is too big").
    pub async fn get_file(&self, file_id: &str) -> Result<FileInfo, TelegramError> {
        match &*self.backend {
            Backend::Console(_) => Err(TelegramError::Api {
                code: 400,
                description: "console mode has no files".into(),
            }),
            Backend::Api(api) => api.call("getFile", &json!({ "file_id": file_id })).await,
        }
    }

    /// Downloads a file `getFile` described, refusing more than
    /// `max_bytes` (counted as it arrives, whatever the size claimed).
    pub async fn download_file(
        &self,
        file_path: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, TelegramError> {
        match &*self.backend {
            Backend::Console(_) => Err(TelegramError::Api {
                code: 400,
                description: "console mode has no files".into(),
            }),
            Backend::Api(api) => api.download(file_path, max_bytes).await,
        }
    }

    /// `createForumTopic`: a new topic named `name` in a forum supergroup
    /// or a private chat with topics; its `message_thread_id`. Console
    /// mode has no topics (`None`: the chat stays flat).
    pub async fn create_forum_topic(
        &self,
        chat_id: i64,
        name: &str,
    ) -> Result<Option<i64>, TelegramError> {
        #[derive(Deserialize)]
        struct ForumTopic {
            message_thread_id: i64,
        }
        match &*self.backend {
            Backend::Console(_) => Ok(None),
            Backend::Api(api) => {
                let body = json!({"chat_id": chat_id, "name": name});
                let topic: ForumTopic = api.call("createForumTopic", &body).await?;
                Ok(Some(topic.message_thread_id))
            }
        }
    }

    /// `editForumTopic` with a new name; one that is already the topic's
    /// ("TOPIC_NOT_MODIFIED") counts as done.
    pub async fn rename_forum_topic(
        &self,
        chat_id: i64,
        thread: i64,
        name: &str,
    ) -> Result<(), TelegramError> {
        let body = json!({"chat_id": chat_id, "message_thread_id": thread, "name": name});
        match self.call_raw("editForumTopic", &body).await {
            Err(TelegramError::Api { description, .. })
                if description.contains("TOPIC_NOT_MODIFIED") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// `closeForumTopic`; a topic closed already counts as done.
    pub async fn close_forum_topic(&self, chat_id: i64, thread: i64) -> Result<(), TelegramError> {
        let body = json!({"chat_id": chat_id, "message_thread_id": thread});
        match self.call_raw("closeForumTopic", &body).await {
            Err(TelegramError::Api { description, .. })
                if description.contains("TOPIC_NOT_MODIFIED") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Calls any Bot API method with a JSON body and returns its `result`
    /// (console mode: `true`, nothing printed).
    pub async fn call_raw(&self, method: &str, body: &Value) -> Result<Value, TelegramError> {
        match &*self.backend {
            Backend::Console(_) => Ok(Value::Bool(true)),
            Backend::Api(api) => api.call(method, body).await,
        }
    }
}

impl Api {
    /// The method's URL; it holds the token, so it is never logged.
    fn url(&self, method: &str) -> String {
        format!(
            "{}/bot{}/{}",
            self.api_base,
            self.token.expose_secret(),
            method
        )
    }

    /// `{api_base}/file/bot{token}/{file_path}`, read in pieces and given
    /// up past `max_bytes`. The URL holds the token: errors are redacted.
    async fn download(&self, file_path: &str, max_bytes: u64) -> Result<Vec<u8>, TelegramError> {
        let url = format!(
            "{}/file/bot{}/{}",
            self.api_base,
            self.token.expose_secret(),
            file_path.trim_start_matches('/')
        );
        let mut response = self
            .http
            .get(url)
            .timeout(UPLOAD_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(TelegramError::Api {
                code: status,
                description: format!("the file download was refused (HTTP {status})"),
            });
        }
        let mut bytes = Vec::new();
        while let Some(piece) = response.chunk().await.map_err(|e| self.transport(e))? {
            if bytes.len() as u64 + piece.len() as u64 > max_bytes {
                return Err(TelegramError::Api {
                    code: 413,
                    description: format!("the file is larger than {max_bytes} bytes"),
                });
            }
            bytes.extend_from_slice(&piece);
        }
        Ok(bytes)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &Value,
    ) -> Result<T, TelegramError> {
        let url = self.url(method);
        let response = self.http.post(url).json(body).send().await;
        self.answer(method, response).await
    }

    /// [`Api::call`] with its own time limit (long polls).
    async fn call_within<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &Value,
        limit: Duration,
    ) -> Result<T, TelegramError> {
        let url = self.url(method);
        let response = self.http.post(url).json(body).timeout(limit).send().await;
        self.answer(method, response).await
    }

    async fn call_multipart<T: DeserializeOwned>(
        &self,
        method: &str,
        form: reqwest::multipart::Form,
    ) -> Result<T, TelegramError> {
        let url = self.url(method);
        let response = self
            .http
            .post(url)
            .multipart(form)
            .timeout(UPLOAD_TIMEOUT)
            .send()
            .await;
        self.answer(method, response).await
    }

    /// Reads Telegram's answer to a call.
    async fn answer<T: DeserializeOwned>(
        &self,
        method: &str,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, TelegramError> {
        let response = response.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        let envelope: Envelope =
            serde_json::from_slice(&bytes).map_err(|_| TelegramError::Api {
                code: status,
                description: format!("unexpected response to {method} (HTTP {status})"),
            })?;
        if envelope.ok {
            let result = envelope.result.unwrap_or(Value::Null);
            return serde_json::from_value(result).map_err(|e| TelegramError::Api {
                code: status,
                description: format!("unexpected result of {method}: {e}"),
            });
        }
        let code = envelope.error_code.unwrap_or(status);
        if code == 429 {
            let retry_after = envelope
                .parameters
                .and_then(|p| p.retry_after)
                .unwrap_or(DEFAULT_RETRY_AFTER_SECS);
            return Err(TelegramError::RetryAfter(retry_after));
        }
        Err(TelegramError::Api {
            code,
            description: self.redact(envelope.description.unwrap_or_default()),
        })
    }

    /// A network error without the URL, which holds the token.
    fn transport(&self, err: reqwest::Error) -> TelegramError {
        let err = err.without_url();
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        TelegramError::Transport(self.redact(text))
    }

    /// Belt and braces: whatever a lower layer put in a message, the token
    /// never leaves this module.
    fn redact(&self, text: String) -> String {
        let token = self.token.expose_secret();
        if token.is_empty() || !text.contains(token) {
            return text;
        }
        text.replace(token, "<token>")
    }
}
