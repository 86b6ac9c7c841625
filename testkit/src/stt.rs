//! A fake OpenAI-compatible speech-to-text server: `POST
//! /v1/audio/transcriptions`, as OpenAI serves it.
//!
//! It records every request (the uploaded file's bytes, name and type, the
//! model, the response format, the bearer key) and answers with the
//! transcript a test chose ([`FakeStt::set_transcript`]). Like the fake
//! Telegram it refuses what OpenAI refuses, with OpenAI's status and error
//! body (`{"error": {"message", "type", "param", "code"}}`), checked in
//! this order:
//!
//! | request | status | message |
//! |---|---|---|
//! | no `Authorization` (when a key is required) | 401 | You didn't provide an API key. … |
//! | another key | 401 | Incorrect API key provided: sk-ab…wxyz. … (`invalid_api_key`) |
//! | no `model` field | 400 | you must provide a model parameter |
//! | no `file` field | 400 | 1 validation error for Request / body -> file / field required |
//! | a file name without a supported extension | 400 | Invalid file format. Supported formats: [...] |
//! | `response_format` not one of OpenAI's five | 400 | 'x' is not one of [...] - 'response_format' |
//!
//! A test can also script the next answers: [`FakeStt::fail_next`] (an
//! error status with an OpenAI-style body) and [`FakeStt::hang_next`] (no
//! answer at all, until the fake is dropped), for the client's error and
//! timeout paths. Scripted faults apply to requests that pass the checks.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The formats OpenAI accepts, by the file name's extension, as its error
/// lists them.
pub const SUPPORTED_FORMATS: [&str; 10] = [
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm",
];
/// OpenAI's limit on an upload (25 MB).
pub const MAX_FILE_BYTES: usize = 25 * 1024 * 1024;
/// What the fake answers until a test sets another transcript.
pub const DEFAULT_TRANSCRIPT: &str = "fix the failing test in parser.rs";

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SttRequest {
    /// The `file` part's bytes (empty when there was none).
    pub file: Vec<u8>,
    /// The `file` part's file name and content type, if any.
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub model: Option<String>,
    pub response_format: Option<String>,
    /// The key of `Authorization: Bearer <key>`, if one was sent.
    pub bearer: Option<String>,
    /// What the fake answered (0 while a hung request waits).
    pub status: u16,
}

/// A scripted answer for the next request that passes the checks.
#[derive(Debug, Clone)]
enum Fault {
    Fail { status: u16, message: String },
    Hang,
}

#[derive(Default)]
struct Inner {
    key: Option<String>,
    transcript: Option<String>,
    faults: VecDeque<Fault>,
    requests: Vec<SttRequest>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(inner: &Shared) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fake server; stops (and lets hung requests go) when dropped.
pub struct FakeStt {
    addr: SocketAddr,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
    /// Set to true on drop: hung requests end then.
    release: tokio::sync::watch::Sender<bool>,
}

impl Drop for FakeStt {
    fn drop(&mut self) {
        let _ = self.release.send(true);
        self.task.abort();
    }
}

#[derive(Clone)]
struct AppState {
    inner: Shared,
    released: tokio::sync::watch::Receiver<bool>,
}

impl FakeStt {
    /// Starts the fake on `127.0.0.1:0`, accepting any key (or none), as a
    /// local Whisper server does; [`FakeStt::require_key`] makes it OpenAI.
    pub async fn start() -> Self {
        let inner: Shared = Arc::default();
        let (release, released) = tokio::sync::watch::channel(false);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake speech-to-text server");
        let addr = listener.local_addr().expect("fake STT address");
        let app = axum::Router::new()
            .route(
                "/v1/audio/transcriptions",
                axum::routing::post(transcriptions),
            )
            .layer(DefaultBodyLimit::max(MAX_FILE_BYTES + 1024 * 1024))
            .with_state(AppState {
                inner: inner.clone(),
                released,
            });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStt {
            addr,
            inner,
            task,
            release,
        }
    }

    /// `http://127.0.0.1:PORT/v1`: the API base, what `STT_URL` takes.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requires `Authorization: Bearer <key>` from now on.
    pub fn require_key(&self, key: &str) {
        lock(&self.inner).key = Some(key.to_string());
    }

    /// The transcript of every later request.
    pub fn set_transcript(&self, text: &str) {
        lock(&self.inner).transcript = Some(text.to_string());
    }

    /// The next request that passes the checks is answered `status` with
    /// OpenAI's error body around `message`.
    pub fn fail_next(&self, status: u16, message: &str) {
        lock(&self.inner).faults.push_back(Fault::Fail {
            status,
            message: message.to_string(),
        });
    }

    /// The next request that passes the checks gets no answer while the
    /// fake lives.
    pub fn hang_next(&self) {
        lock(&self.inner).faults.push_back(Fault::Hang);
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<SttRequest> {
        lock(&self.inner).requests.clone()
    }

    /// Waits until `n` requests arrived; false on timeout.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if lock(&self.inner).requests.len() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// OpenAI's error body.
fn error(status: u16, message: &str, code: Option<&str>) -> Response {
    let kind = if status >= 500 {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let body = json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// How OpenAI shows a wrong key: its ends only.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim().to_string())
}

async fn read_form(req: Request) -> SttRequest {
    let mut got = SttRequest {
        file: Vec::new(),
        file_name: None,
        content_type: None,
        model: None,
        response_format: None,
        bearer: bearer(req.headers()),
        status: 0,
    };
    // A body that is not a form has no fields: it is refused below for
    // the first one missing, as OpenAI does.
    let Ok(mut form) = Multipart::from_request(req, &()).await else {
        return got;
    };
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                got.file_name = field.file_name().map(str::to_string);
                got.content_type = field.content_type().map(str::to_string);
                got.file = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                // A text field named `file` is not a file.
                if got.file_name.is_none() {
                    got.file.clear();
                }
            }
            "model" => got.model = field.text().await.ok(),
            "response_format" => got.response_format = field.text().await.ok(),
            _ => {}
        }
    }
    got
}

/// OpenAI's checks, in its order; `None` when the request passes.
fn refusal(request: &SttRequest, key: Option<&str>) -> Option<Response> {
    if let Some(key) = key {
        match request.bearer.as_deref() {
            None | Some("") => {
                return Some(error(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
                    None,
                ));
            }
            Some(sent) if sent != key => {
                return Some(error(
                    401,
                    &format!(
                        "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                        masked(sent)
                    ),
                    Some("invalid_api_key"),
                ));
            }
            Some(_) => {}
        }
    }
    if request.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
        return Some(error(400, "you must provide a model parameter", None));
    }
    let Some(name) = &request.file_name else {
        return Some(error(
            400,
            "1 validation error for Request\nbody -> file\n  field required (type=value_error.missing)",
            None,
        ));
    };
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !SUPPORTED_FORMATS.contains(&extension.as_str()) {
        let list: Vec<String> = SUPPORTED_FORMATS.iter().map(|f| format!("'{f}'")).collect();
        return Some(error(
            400,
            &format!(
                "Invalid file format. Supported formats: [{}]",
                list.join(", ")
            ),
            None,
        ));
    }
    const FORMATS: [&str; 5] = ["json", "text", "srt", "verbose_json", "vtt"];
    if let Some(format) = request.response_format.as_deref()
        && !FORMATS.contains(&format)
    {
        let list: Vec<String> = FORMATS.iter().map(|f| format!("'{f}'")).collect();
        return Some(error(
            400,
            &format!(
                "'{format}' is not one of [{}] - 'response_format'",
                list.join(", ")
            ),
            None,
        ));
    }
    None
}

/// The transcript in the format asked for.
fn transcript(text: &str, format: Option<&str>) -> Response {
    match format.unwrap_or("json") {
        "text" => (StatusCode::OK, format!("{text}\n")).into_response(),
        "srt" => (
            StatusCode::OK,
            format!("1\n00:00:00,000 --> 00:00:02,000\n{text}\n\n"),
        )
            .into_response(),
        "vtt" => (
            StatusCode::OK,
            format!("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n{text}\n\n"),
        )
            .into_response(),
        "verbose_json" => axum::Json(json!({
            "task": "transcribe", "language": "english", "duration": 2.0,
            "text": text, "segments": [],
        }))
        .into_response(),
        _ => axum::Json(json!({"text": text})).into_response(),
    }
}

async fn transcriptions(State(app): State<AppState>, req: Request) -> Response {
    let mut request = read_form(req).await;
    let answer = {
        let mut state = lock(&app.inner);
        let answer = match refusal(&request, state.key.as_deref()) {
            Some(refused) => Err(refused),
            None => Ok(state.faults.pop_front()),
        };
        let text = state
            .transcript
            .clone()
            .unwrap_or_else(|| DEFAULT_TRANSCRIPT.to_string());
        let response = match answer {
            Err(refused) => Some(refused),
            Ok(Some(Fault::Fail { status, message })) => Some(error(status, &message, None)),
            Ok(Some(Fault::Hang)) => None,
            Ok(None) => Some(transcript(&text, request.response_format.as_deref())),
        };
        request.status = response.as_ref().map_or(0, |r| r.status().as_u16());
        state.requests.push(request);
        response
    };
    match answer {
        Some(response) => response,
        None => {
            let mut released = app.released.clone();
            let _ = released.wait_for(|r| *r).await;
            error(503, "the fake speech-to-text server stopped", None)
        }
    }
}

/// The `error.message` of an OpenAI error body.
pub fn openai_error_message(body: &Value) -> Option<&str> {
    body.get("error")?.get("message")?.as_str()
}
