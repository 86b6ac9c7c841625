//! Files the daemon sends to the chat (ARCHITECTURE.md, Contracts:
//! "Files"): what `/get PATH` asks for ([`get`]) and what the runner leaves
//! in `.remoteagent/outbox/` ([`outbox`]).
//!
//! The bytes never travel in an event: they are written to a blob key
//! (`blob:{agentId}:{blobId}`, `SET … EX` [`BLOB_TTL_SECS`]) and the stream
//! gets a `file` event describing them (name, type, size, SHA-256), which
//! the cloud checks before it sends the document and deletes the blob.
//!
//! * [`resolve`]: where a `/get` path points, or why it is refused.
//! * [`zip`]: a folder as one zip, within limits.
//! * [`BlobStore`]: writing blobs on a connection of their own.

pub mod get;
pub mod outbox;
pub mod resolve;
pub mod zip;

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::files::{Attachment, BLOB_TTL_SECS, MAX_UPLOAD_BYTES, safe_file_name};
use remoteagent_proto::{AgentId, names};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Attempts at writing one blob.
const PUT_ATTEMPTS: u32 = 3;

/// Writes an agent's blobs.
///
/// Each write opens a connection of its own, logged in as the agent: a
/// 50 MB `SET` can take minutes on a slow uplink, and on the link's
/// connection it would hold up the presence heartbeat behind it (Redis
/// answers a connection's commands in order) until the agent looked
/// offline.
#[derive(Clone)]
pub struct BlobStore {
    agent: AgentId,
    url: String,
    username: String,
    /// The agent JWT (its Redis password). Never logged.
    password: SecretString,
}

impl BlobStore {
    /// Logs in as the agent `agent`: its Redis `url` (no credentials), ACL
    /// `username` and JWT `password`, as its link does.
    pub fn new(agent: AgentId, url: String, username: String, password: SecretString) -> Self {
        BlobStore {
            agent,
            url,
            username,
            password,
        }
    }

    /// Stores `bytes` under a new blob key for [`BLOB_TTL_SECS`]; the
    /// attachment that describes them. Retried a few times; `Err` is said
    /// to the user as it is.
    pub async fn put(
        &self,
        name: &str,
        bytes: &[u8],
        cancel: &CancellationToken,
    ) -> Result<Attachment, String> {
        let id = format!("{:032x}", rand::random::<u128>());
        let attachment = Attachment {
            key: names::blob_key(&self.agent, &id),
            name: safe_file_name(name),
            mime: mime_of(name).to_string(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        };
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5))
            .attempts(PUT_ATTEMPTS)
            .without_jitter();
        loop {
            let attempt = tokio::select! {
                r = self.put_once(&attachment.key, bytes) => r,
                () = cancel.cancelled() => return Err("the daemon is stopping".into()),
            };
            let e = match attempt {
                Ok(()) => return Ok(attachment),
                Err(e) => e,
            };
            let Some(delay) = backoff.next_delay() else {
                return Err(format!("Redis did not take the file: {e}"));
            };
            tracing::warn!(error = %e, retry_in = ?delay, "writing a file for the chat failed; retrying");
            if !crate::util::time::sleep_unless_cancelled(delay, cancel).await {
                return Err("the daemon is stopping".into());
            }
        }
    }

    async fn put_once(&self, key: &str, bytes: &[u8]) -> redis::RedisResult<()> {
        let mut conn = self.connection(bytes.len() as u64).await?;
        redis::cmd("SET")
            .arg(key)
            .arg(bytes)
            .arg("EX")
            .arg(BLOB_TTL_SECS)
            .query_async::<()>(&mut conn)
            .await
    }

    /// A connection of its own, logged in as the agent, for moving up to
    /// `bytes` in one command: a slow 50 MB `SET` or `GET` on the agent's
    /// shared link would hold up its heartbeats until it looked offline.
    /// Used for the chat's files and for the files sent with a prompt.
    pub async fn connection(&self, bytes: u64) -> redis::RedisResult<remoteagent_rediskit::Conn> {
        let target = crate::redis_conn::agent_target(
            &self.url,
            &self.username,
            self.password.expose_secret(),
        )?;
        // Long enough for 50 MB at about 250 kB/s.
        let response = Duration::from_secs(30 + bytes / 250_000);
        let options = remoteagent_rediskit::Options {
            connection_timeout: Some(Duration::from_secs(10)),
            response_timeout: Some(response),
            ..Default::default()
        };
        // On a cluster its own sockets too (one per node, few: it lives
        // for one file), so a long `SET` never waits behind the link.
        remoteagent_rediskit::conn::dedicated(&target, &options).await
    }
}

/// Opens a file for reading only if it is a regular file, without
/// following a symlink in its last part and without blocking (a FIFO put
/// in its place since it was looked at would block a plain `open`).
pub(crate) fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// Why a file could not be read for the chat.
#[derive(Debug)]
pub enum ReadError {
    /// Over [`MAX_UPLOAD_BYTES`]: its size.
    TooBig(u64),
    Io(std::io::Error),
}

/// The bytes of a regular file of at most [`MAX_UPLOAD_BYTES`].
pub fn read_for_chat(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path).map_err(ReadError::Io)?;
    let len = file.metadata().map_err(ReadError::Io)?.len();
    if len > MAX_UPLOAD_BYTES {
        return Err(ReadError::TooBig(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // One byte more than allowed: a file that grew past the limit since
    // its size was read is told, not cut.
    file.take(MAX_UPLOAD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_UPLOAD_BYTES {
        return Err(ReadError::TooBig(bytes.len() as u64));
    }
    Ok(bytes)
}

/// A size for people, in Telegram's units (1 MB = 1,000,000 bytes):
/// `73.2 MB`, `12.5 kB`, `812 bytes`.
pub fn human_size(bytes: u64) -> String {
    const KB: f64 = 1000.0;
    let b = bytes as f64;
    if b >= KB * KB {
        format!("{:.1} MB", b / (KB * KB))
    } else if b >= KB {
        format!("{:.1} kB", b / KB)
    } else if bytes == 1 {
        "1 byte".into()
    } else {
        format!("{bytes} bytes")
    }
}

/// Telegram's limit, for people.
pub fn upload_limit_text() -> String {
    format!(
        "Telegram bots can send at most {} MB",
        MAX_UPLOAD_BYTES / 1_000_000
    )
}

/// The MIME type of a file name's extension (what the chat shows does not
/// depend on it much: Telegram looks at the bytes too).
pub fn mime_of(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "rs" | "py" | "sh" | "toml" | "yaml" | "yml" | "c" | "h" | "go" | "js"
        | "ts" | "java" | "rb" | "css" | "diff" | "patch" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// A path or name as the user will read it in a notice: one line, no
/// control or invisible format characters, at most 200 characters.
pub fn shown(path: &str) -> String {
    let clean: String = path
        .trim()
        .chars()
        .filter(|c| !c.is_control() && !remoteagent_proto::text::is_format_char(*c))
        .collect();
    if clean.chars().count() > 200 {
        let cut: String = clean.chars().take(199).collect();
        format!("{cut}…")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_types_for_people() {
        assert_eq!(human_size(73_200_000), "73.2 MB");
        assert_eq!(human_size(50_000_001), "50.0 MB");
        assert_eq!(human_size(12_500), "12.5 kB");
        assert_eq!(human_size(812), "812 bytes");
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(upload_limit_text(), "Telegram bots can send at most 50 MB");
        assert_eq!(mime_of("src.zip"), "application/zip");
        assert_eq!(mime_of("Main.RS"), "text/plain");
        assert_eq!(mime_of("noext"), "application/octet-stream");
        assert_eq!(shown(" a\u{202e}b\nc "), "abc");
        assert_eq!(shown(&"x".repeat(300)).chars().count(), 200);
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "hello").unwrap();
        assert_eq!(read_for_chat(&file).unwrap(), b"hello");
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(open_regular(&link).is_err(), "a symlink is not followed");
        let fifo = dir.path().join("p");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(open_regular(&fifo).is_err(), "a FIFO is refused, at once");
        let big = dir.path().join("big");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_UPLOAD_BYTES + 1).unwrap();
        assert!(matches!(
            read_for_chat(&big),
            Err(ReadError::TooBig(n)) if n == MAX_UPLOAD_BYTES + 1
        ));
    }
}
