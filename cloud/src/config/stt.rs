//! The speech-to-text settings that turn voice notes into prompts:
//! `STT_URL`, `STT_API_KEY` (or `STT_API_KEY_FILE`), `STT_MODEL`,
//! `STT_TIMEOUT_SECS`. Without `STT_URL` voice notes are off.

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use super::settings::Values;
use super::{ConfigError, Problems, at_least, secret_file};

/// What OpenAI calls its transcription model; local Whisper servers accept
/// it too (faster-whisper-server maps it to a default model).
pub const DEFAULT_STT_MODEL: &str = "whisper-1";
/// How long one transcription may take, upload included.
pub const DEFAULT_STT_TIMEOUT_SECS: u64 = 60;

/// The OpenAI path of the transcription endpoint under an API base.
const TRANSCRIPTIONS: &str = "/audio/transcriptions";

/// Where voice notes are transcribed. `Debug` shows no key.
#[derive(Debug, Clone)]
pub struct SttConfig {
    /// The full endpoint: `{STT_URL}/audio/transcriptions` (see
    /// [`stt_endpoint`]).
    pub endpoint: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<SecretString>,
    pub model: String,
    pub timeout: Duration,
}

/// The endpoint `STT_URL` stands for. `STT_URL` is the API's base, as
/// OpenAI's SDKs take it (`https://api.openai.com/v1`,
/// `http://127.0.0.1:8000/v1`): `/audio/transcriptions` is appended. A URL
/// that already ends with that path (copied from the API reference) is
/// taken as it is.
pub fn stt_endpoint(url: &str) -> String {
    let base = url.trim().trim_end_matches('/');
    if base.ends_with(TRANSCRIPTIONS) {
        base.to_string()
    } else {
        format!("{base}{TRANSCRIPTIONS}")
    }
}

/// The settings, or `None` when `STT_URL` is unset or something is wrong
/// (then recorded in `p`).
pub(super) fn read(v: &Values, p: &mut Problems) -> Option<SttConfig> {
    let key = match (v.get("STT_API_KEY"), v.get("STT_API_KEY_FILE")) {
        (Some(k), None) => Some(k),
        (None, Some(path)) => p.check(secret_file(v, "STT_API_KEY_FILE", Path::new(&path))),
        (Some(_), Some(_)) => {
            p.errors.push(v.invalid(
                "STT_API_KEY_FILE",
                "STT_API_KEY is set too: set only one of them",
            ));
            None
        }
        (None, None) => None,
    };
    let timeout = p.check(at_least(v, "STT_TIMEOUT_SECS", 1u64, Some(600)));
    let Some(url) = v.get("STT_URL") else {
        if key.is_some() {
            // A key without a server is a half-done set-up: said at start,
            // not discovered at the first voice note.
            p.errors.push(ConfigError::Invalid {
                key: "STT_URL",
                message: "is not set, but an STT API key is: set STT_URL too (voice notes are off without it)".into(),
            });
        }
        return None;
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        p.errors.push(v.invalid(
            "STT_URL",
            "must start with http:// or https:// (e.g. https://api.openai.com/v1)",
        ));
        return None;
    }
    let model = v
        .get("STT_MODEL")
        .unwrap_or_else(|| DEFAULT_STT_MODEL.into());
    Some(SttConfig {
        endpoint: stt_endpoint(&url),
        api_key: key.map(SecretString::from),
        model,
        timeout: Duration::from_secs(timeout?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_the_api_base_or_the_endpoint_itself() {
        assert_eq!(
            stt_endpoint("https://api.openai.com/v1"),
            "https://api.openai.com/v1/audio/transcriptions"
        );
        assert_eq!(
            stt_endpoint("http://127.0.0.1:8000/v1/"),
            "http://127.0.0.1:8000/v1/audio/transcriptions"
        );
        assert_eq!(
            stt_endpoint("https://api.openai.com/v1/audio/transcriptions"),
            "https://api.openai.com/v1/audio/transcriptions"
        );
        assert_eq!(
            stt_endpoint("http://box:8080/v1/audio/transcriptions/"),
            "http://box:8080/v1/audio/transcriptions"
        );
    }
}
