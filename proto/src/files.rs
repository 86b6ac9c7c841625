//! Files that travel between the phone and the project (ARCHITECTURE.md,
//! Contracts: "Files"): attachments sent from the phone into a session,
//! and files the daemon sends back (`/get`, the `.remoteagent/outbox/`).
//!
//! The bytes never travel inside an event. They sit in a Redis string under
//! a blob key (`blob:{agentId}:{blobId}`, [`crate::names::blob_key`]) with a
//! short TTL; only that agent's ACL user (and the cloud) may read or write
//! it. The event carries an [`Attachment`]: the key, the name, the type,
//! the size and the SHA-256, so the reader checks what it got.

use serde::{Deserialize, Serialize};

use crate::SessionId;

/// The Bot API's limit on a file a bot may download (`getFile`).
pub const MAX_DOWNLOAD_BYTES: u64 = 20 * 1000 * 1000;
/// The Bot API's limit on a file a bot may upload (`sendDocument`).
pub const MAX_UPLOAD_BYTES: u64 = 50 * 1000 * 1000;
/// How long a blob lives in Redis: long enough for a busy reader, short
/// enough that a file no one fetched does not linger.
pub const BLOB_TTL_SECS: u64 = 15 * 60;
/// Longest file name kept, in bytes (most file systems allow 255).
pub const MAX_FILE_NAME_BYTES: usize = 120;

/// A file in a blob key, as an event describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The blob key holding the bytes (`blob:{agentId}:{blobId}`).
    pub key: String,
    /// The file's name for people, already passed through
    /// [`safe_file_name`] by the writer; the reader passes it through again.
    pub name: String,
    /// The MIME type as the sender gave it (`image/jpeg`, …).
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
}

/// `/get PATH`: the daemon reads `path` (relative to the project) and answers
/// on the output stream of `session_id` with a `file` event (or a `notice`),
/// then `done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetFilePayload {
    pub session_id: SessionId,
    /// As the user typed it; the daemon resolves it inside the project and
    /// refuses anything outside.
    pub path: String,
}

/// Why the daemon sends a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOrigin {
    /// Asked for with `/get`.
    Get,
    /// Left by the runner in `.remoteagent/outbox/`.
    Outbox,
    /// A kind this build does not know.
    #[serde(other)]
    Other,
}

/// A `file` event of an output stream: a file for the chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilePayload {
    #[serde(flatten)]
    pub file: Attachment,
    pub origin: FileOrigin,
}

/// A file name made safe to use as the last part of a path: never trusted
/// as a path itself. Keeps the final component only (after `/` or `\`),
/// drops control characters and NUL, replaces what shells and file systems
/// treat specially, refuses `.`/`..` and hidden names, and caps the length
/// (keeping the extension). Never empty: falls back to `file`.
pub fn safe_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let mut name: String = last
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            ':' | '*' | '?' | '"' | '<' | '>' | '|' | '$' | '`' | ';' | '&' => '_',
            c if c.is_whitespace() => ' ',
            c => c,
        })
        .collect();
    name = name.trim().trim_start_matches('.').trim().to_string();
    // Unicode format characters (bidi overrides, zero-width) would let a
    // name look like another.
    name.retain(|c| !crate::text::is_format_char(c));
    if name.is_empty() {
        return "file".to_string();
    }
    if name.len() > MAX_FILE_NAME_BYTES {
        let (stem, ext) = match name.rfind('.') {
            Some(i) if name.len() - i <= 16 => name.split_at(i),
            _ => (name.as_str(), ""),
        };
        let mut cut = MAX_FILE_NAME_BYTES - ext.len();
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        name = format!("{}{}", &stem[..cut], ext);
    }
    name
}

/// Whether `hex` looks like a SHA-256 in lowercase hex.
pub fn valid_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_never_paths() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("/abs/path.png"), "path.png");
        assert_eq!(safe_file_name("..\\win\\evil.exe"), "evil.exe");
        assert_eq!(safe_file_name(".."), "file");
        assert_eq!(safe_file_name("."), "file");
        assert_eq!(safe_file_name(""), "file");
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(safe_file_name("a\0b\nc.txt"), "abc.txt");
        assert_eq!(safe_file_name("x;rm -rf $(y).txt"), "x_rm -rf _(y).txt");
        assert_eq!(safe_file_name("a\u{202e}txt.exe"), "atxt.exe");
        assert_eq!(safe_file_name("report 2026.pdf"), "report 2026.pdf");
        let long = format!("{}.jpg", "é".repeat(200));
        let safe = safe_file_name(&long);
        assert!(safe.len() <= MAX_FILE_NAME_BYTES, "{}", safe.len());
        assert!(safe.ends_with(".jpg"));
    }

    #[test]
    fn sha256_hex_shape() {
        assert!(valid_sha256_hex(&"a".repeat(64)));
        assert!(!valid_sha256_hex(&"A".repeat(64)));
        assert!(!valid_sha256_hex(&"a".repeat(63)));
    }

    #[test]
    fn file_event_payload_is_flat_and_tolerant() {
        let p = FilePayload {
            file: Attachment {
                key: "blob:a1:b1".into(),
                name: "x.txt".into(),
                mime: "text/plain".into(),
                size: 3,
                sha256: "0".repeat(64),
            },
            origin: FileOrigin::Get,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["key"], "blob:a1:b1");
        assert_eq!(v["origin"], "get");
        let mut v2 = v.clone();
        v2["origin"] = "later".into();
        let back: FilePayload = serde_json::from_value(v2).unwrap();
        assert_eq!(back.origin, FileOrigin::Other);
    }
}
