//! Files users send the bot: `getFile` and the file download
//! (`GET {api_base}/file/bot{token}/{file_path}`), as the Bot API serves
//! them.
//!
//! A test stores a file the user "sent" with [`FakeTelegram::add_file`]
//! (or [`FakeTelegram::add_photo`], which adds the smaller sizes Telegram
//! makes of a photo) and puts its `file_id` in an update
//! ([`super::updates::photo`], `document`, `voice`, `audio`). The rules are
//! the Bot API's:
//!
//! * `getFile` with an unknown or empty `file_id`: 400 "Bad Request:
//!   invalid file_id";
//! * `getFile` of a file over 20 MB: 400 "Bad Request: file is too big"
//!   (bots may download files of at most 20 MB);
//! * the download of a path `getFile` never gave, or with another token:
//!   404 "Not Found" (Telegram answers it as JSON).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::params::string_param;
use super::rules::{Refusal, RuleId};
use super::{FAKE_TOKEN, FakeTelegram, Inner, Shared, lock};

/// The Bot API's limit on a file a bot may download.
pub const MAX_DOWNLOAD_BYTES: usize = 20 * 1000 * 1000;

/// A file the fake holds, as a test refers to it in updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFile {
    pub file_id: String,
    pub file_unique_id: String,
    pub file_size: usize,
    /// Where `getFile` says it is (`photos/file_3.jpg`).
    pub file_path: String,
}

pub(super) struct StoredFile {
    file: FakeFile,
    bytes: Vec<u8>,
}

impl FakeTelegram {
    /// Stores a file a user sends the bot. `folder` is Telegram's folder of
    /// its kind (`photos`, `documents`, `voice`, `music`) and `extension`
    /// the file's (`jpg`, `ogg`, …), as in the paths `getFile` returns.
    pub fn add_file(&self, bytes: Vec<u8>, folder: &str, extension: &str) -> FakeFile {
        let mut state = lock(&self.inner);
        state.next_file += 1;
        let n = state.next_file;
        let file = FakeFile {
            // Telegram's ids are long opaque strings; these are shaped alike.
            file_id: format!("AgACAgIAAxkBAAI{n:06}fake{}", bytes.len()),
            file_unique_id: format!("AQAD{n:06}"),
            file_size: bytes.len(),
            file_path: format!("{folder}/file_{n}.{extension}"),
        };
        state.files.push(StoredFile {
            file: file.clone(),
            bytes,
        });
        file
    }

    /// Stores a photo as Telegram does: the smaller sizes first (here two
    /// shortened copies stand in for the thumbnails), the full size last.
    pub fn add_photo(&self, bytes: Vec<u8>) -> Vec<FakeFile> {
        let small = bytes.len().min(64);
        let medium = bytes.len().min(bytes.len() / 2 + 1);
        vec![
            self.add_file(bytes[..small].to_vec(), "photos", "jpg"),
            self.add_file(bytes[..medium].to_vec(), "photos", "jpg"),
            self.add_file(bytes, "photos", "jpg"),
        ]
    }

    /// The paths downloaded so far (each successful download), in order.
    pub fn downloads(&self) -> Vec<String> {
        lock(&self.inner).downloads.clone()
    }
}

/// `getFile`.
pub(super) fn get_file(state: &Inner, body: &Value) -> Result<Value, Refusal> {
    let file_id = string_param(body, "file_id").unwrap_or_default();
    let stored = state
        .files
        .iter()
        .find(|f| !file_id.is_empty() && f.file.file_id == file_id)
        .ok_or_else(|| Refusal::of(RuleId::InvalidFileId))?;
    if stored.file.file_size > MAX_DOWNLOAD_BYTES {
        return Err(Refusal::of(RuleId::FileTooBigToDownload));
    }
    Ok(json!({
        "file_id": stored.file.file_id,
        "file_unique_id": stored.file.file_unique_id,
        "file_size": stored.file.file_size,
        "file_path": stored.file.file_path,
    }))
}

/// `GET /file/bot{token}/{file_path}`.
pub(super) fn download(inner: &Shared, rest: &str) -> Response {
    let not_found = || {
        let body = json!({"ok": false, "error_code": 404, "description": "Not Found"});
        (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
    };
    let Some((token, path)) = rest.split_once('/') else {
        return not_found();
    };
    if token != FAKE_TOKEN {
        return not_found();
    }
    let mut state = lock(inner);
    // Only a file whose path `getFile` handed out (and within the limit).
    let Some(bytes) = state
        .files
        .iter()
        .find(|f| f.file.file_path == path && f.file.file_size <= MAX_DOWNLOAD_BYTES)
        .map(|f| f.bytes.clone())
    else {
        return not_found();
    };
    state.downloads.push(path.to_string());
    (StatusCode::OK, bytes).into_response()
}
