//! Speech to text: the client of an OpenAI-compatible transcription
//! endpoint (`POST {STT_URL}/audio/transcriptions`), which OpenAI,
//! faster-whisper-server (speaches), whisper.cpp's server, vLLM and others
//! serve alike.
//!
//! One request per voice note: a multipart form with `file` (the audio,
//! with a file name whose extension tells the format, and its type),
//! `model` and `response_format=json`; the answer is `{"text": "…"}`. The
//! key goes in `Authorization: Bearer`, never in a log or an error. A
//! refusal is reported with the server's own message, cleaned and short
//! (OpenAI's `{"error": {"message"}}`, FastAPI's `{"detail"}`, whisper.cpp's
//! `{"error": "…"}`, or a plain text body), since it usually names the fix
//! (a wrong model, an unsupported format, a bad key).

use std::time::Duration;

use reqwest::multipart::{Form, Part};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::SttConfig;

/// Longest server message passed on to the user, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// A configured transcription endpoint. `Debug` shows no key.
#[derive(Debug, Clone)]
pub struct Stt {
    http: reqwest::Client,
    endpoint: String,
    api_key: Option<SecretString>,
    model: String,
    timeout: Duration,
}

/// One recording to transcribe.
#[derive(Debug, Clone)]
pub struct Audio {
    pub bytes: Vec<u8>,
    /// With the extension of its format (`file_3.oga`, `memo.mp3`): OpenAI
    /// tells the format by it and refuses a name without a known one.
    pub file_name: String,
    /// `audio/ogg`, `audio/mpeg`, …
    pub mime: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SttError {
    /// The server answered with an error status.
    #[error("the speech-to-text server refused it ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the speech-to-text server did not answer within {0} s")]
    Timeout(u64),
    #[error("the speech-to-text server cannot be reached: {0}")]
    Unreachable(String),
    /// A success status with a body that is not `{"text": "…"}`.
    #[error("the speech-to-text server's answer has no transcript: {0}")]
    BadAnswer(String),
}

impl Stt {
    pub fn new(config: &SttConfig) -> Stt {
        Stt {
            http: reqwest::Client::new(),
            endpoint: config.endpoint.clone(),
            api_key: config.api_key.clone(),
            model: config.model.clone(),
            timeout: config.timeout,
        }
    }

    /// The endpoint, with any credentials in it hidden (for logs).
    pub fn endpoint_for_logs(&self) -> String {
        crate::config::redact_url(&self.endpoint)
    }

    /// The time limit of one transcription.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The text spoken in `audio` (trimmed; empty when nothing was heard).
    pub async fn transcribe(&self, audio: Audio) -> Result<String, SttError> {
        // A type the sender made up is not sent: the extension still tells.
        let mime = if Part::bytes(Vec::new()).mime_str(&audio.mime).is_ok() {
            audio.mime
        } else {
            "application/octet-stream".to_string()
        };
        let file = Part::bytes(audio.bytes)
            .file_name(audio.file_name)
            .mime_str(&mime)
            .map_err(|e| SttError::Unreachable(e.without_url().to_string()))?;
        let form = Form::new()
            .part("file", file)
            .text("model", self.model.clone())
            .text("response_format", "json");
        let mut request = self
            .http
            .post(&self.endpoint)
            .timeout(self.timeout)
            .multipart(form);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        // Read whole within the same time limit (`timeout` covers the body).
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            let message = self.redact(&server_message(&body, status));
            return Err(SttError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        let text = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("text").and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| {
                SttError::BadAnswer(self.redact(&clean(&String::from_utf8_lossy(&body))))
            })?;
        Ok(text.trim().to_string())
    }

    /// A transport failure, said without the URL (which may hold
    /// credentials) and without the key.
    fn transport(&self, e: reqwest::Error) -> SttError {
        if e.is_timeout() {
            return SttError::Timeout(self.timeout.as_secs());
        }
        let e = e.without_url();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        // reqwest's own text is "error sending request"; the cause (refused,
        // DNS, TLS) is what helps.
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        SttError::Unreachable(self.redact(&clean(&text)))
    }

    /// `text` without the key, should a server have echoed it.
    fn redact(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) if !key.expose_secret().is_empty() => {
                text.replace(key.expose_secret(), "[STT_API_KEY]")
            }
            _ => text.to_string(),
        }
    }
}

/// The message in an error body, whatever the server's dialect; the
/// status's reason when there is none (an HTML error page of a proxy).
fn server_message(body: &[u8], status: reqwest::StatusCode) -> String {
    let reason = || {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_string()
    };
    let text = String::from_utf8_lossy(body);
    let found = match serde_json::from_str::<Value>(&text) {
        Ok(v) => json_message(&v),
        Err(_) if text.trim_start().starts_with('<') => None,
        Err(_) => Some(text.into_owned()),
    };
    let cleaned = found.map(|m| clean(&m)).unwrap_or_default();
    if cleaned.is_empty() {
        reason()
    } else {
        cleaned
    }
}

fn json_message(v: &Value) -> Option<String> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    // OpenAI: {"error": {"message": …}}; whisper.cpp: {"error": "…"}.
    if let Some(e) = v.get("error") {
        return e.get("message").and_then(text).or_else(|| text(e));
    }
    // vLLM: {"object": "error", "message": …}.
    if let Some(m) = v.get("message").and_then(text) {
        return Some(m);
    }
    // FastAPI: {"detail": "…"} or {"detail": [{"msg": …, "loc": […]}]}.
    match v.get("detail")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| i.get("msg").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => None,
    }
}

/// One line of at most [`MAX_MESSAGE_CHARS`] characters: controls, escape
/// sequences and format characters removed, whitespace collapsed.
fn clean(text: &str) -> String {
    let plain = remoteagent_proto::text::for_terminal_line(text);
    let words: Vec<&str> = plain.split_whitespace().collect();
    let line = words.join(" ");
    if line.chars().count() <= MAX_MESSAGE_CHARS {
        return line;
    }
    let mut short: String = line.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str, status: u16) -> String {
        server_message(
            body.as_bytes(),
            reqwest::StatusCode::from_u16(status).unwrap(),
        )
    }

    #[test]
    fn every_dialect_of_error_is_read() {
        assert_eq!(
            msg(
                r#"{"error": {"message": "you must provide a model parameter", "type": "invalid_request_error", "param": null, "code": null}}"#,
                400
            ),
            "you must provide a model parameter"
        );
        assert_eq!(
            msg(r#"{"error": "failed to read audio"}"#, 500),
            "failed to read audio"
        );
        assert_eq!(
            msg(
                r#"{"object": "error", "message": "The model does not support Transcriptions API", "code": 400}"#,
                400
            ),
            "The model does not support Transcriptions API"
        );
        assert_eq!(
            msg(
                r#"{"detail": [{"type": "missing", "loc": ["body", "file"], "msg": "Field required"}]}"#,
                422
            ),
            "Field required"
        );
        assert_eq!(
            msg(r#"{"detail": "Model not found"}"#, 404),
            "Model not found"
        );
        assert_eq!(
            msg("upstream\nconnect error\x1b[31m", 503),
            "upstream connect error"
        );
        assert_eq!(
            msg("<html><body>502 Bad Gateway</body></html>", 502),
            "Bad Gateway"
        );
        assert_eq!(msg("", 500), "Internal Server Error");
        assert_eq!(msg(r#"{"ok": false}"#, 429), "Too Many Requests");
        let long = msg(&"x".repeat(5000), 400);
        assert_eq!(long.chars().count(), MAX_MESSAGE_CHARS);
        assert!(long.ends_with('…'));
    }
}
