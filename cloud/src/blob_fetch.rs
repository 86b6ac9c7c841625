//! A file the daemon left in a blob key for the chat (`/get`, the
//! outbox), fetched and checked before it becomes a document.
//!
//! The `file` event says which key, how many bytes and their SHA-256; the
//! key must be one of that agent's (`proto::names::is_blob_key_of`), so a
//! forged event cannot make the bot send another agent's file. The bytes
//! are read with `GETRANGE` a piece at a time into a temporary file and
//! hashed on the way, so a 50 MB file costs a megabyte of memory and holds
//! the connection for one piece at a time. Anything that does not match is
//! refused: nothing is sent that the daemon did not describe.
//!
//! Callers use a connection their task owns (a blob of 50 MB would hold up
//! every other command on a shared one), and delete the blob once it was
//! sent ([`delete`]); the blob's own TTL cleans up after a crash.

use redis::aio::ConnectionLike;
use remoteagent_proto::AgentId;
use remoteagent_proto::files::{Attachment, MAX_UPLOAD_BYTES, safe_file_name, valid_sha256_hex};
use remoteagent_proto::names::is_blob_key_of;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::telegram::{Document, DocumentSource};

/// Bytes read per `GETRANGE`.
const PIECE: u64 = 1024 * 1024;

/// Why a file cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The event names a key that is not this agent's, or describes the
    /// file in a way no daemon does.
    #[error("the event describing it is not valid")]
    Invalid,
    /// The blob is gone (expired: nobody fetched it in time).
    #[error("it expired before it could be fetched")]
    Missing,
    /// Its size or SHA-256 differs from what the event says.
    #[error("it did not arrive intact (its size or checksum differs)")]
    Mismatch,
    /// Redis could not be read (the caller may try again).
    #[error("Redis: {0}")]
    Redis(String),
    /// The temporary file could not be written.
    #[error("{0}")]
    Local(String),
}

impl FetchError {
    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Redis(_))
    }
}

/// A fetched file, checked, in a temporary file deleted on drop.
#[derive(Debug)]
pub struct Fetched {
    pub path: tempfile::TempPath,
    pub size: u64,
}

impl Fetched {
    /// The document for Telegram, named as the event says (made safe again).
    pub fn document(&self, file: &Attachment, caption: Option<String>) -> Document {
        Document {
            file_name: safe_file_name(&file.name),
            caption,
            source: DocumentSource::File(self.path.to_path_buf()),
        }
    }
}

/// Reads `file` from its blob key, checking that the key is `agent`'s and
/// that the size and SHA-256 match.
pub async fn fetch<C: ConnectionLike + Send>(
    conn: &mut C,
    agent: &AgentId,
    file: &Attachment,
) -> Result<Fetched, FetchError> {
    if !is_blob_key_of(agent, &file.key)
        || !valid_sha256_hex(&file.sha256)
        || file.size == 0
        || file.size > MAX_UPLOAD_BYTES
    {
        return Err(FetchError::Invalid);
    }
    let len: u64 = redis::cmd("STRLEN")
        .arg(&file.key)
        .query_async(conn)
        .await
        .map_err(|e| FetchError::Redis(e.to_string()))?;
    if len == 0 {
        return Err(FetchError::Missing);
    }
    if len != file.size {
        return Err(FetchError::Mismatch);
    }
    let local = |e: std::io::Error| FetchError::Local(format!("a temporary file: {e}"));
    let (std_file, path) = tempfile::Builder::new()
        .prefix("remoteagent-file-")
        .tempfile()
        .map_err(local)?
        .into_parts();
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(std_file));
    let mut hash = Sha256::new();
    let mut at = 0u64;
    while at < len {
        let end = (at + PIECE).min(len) - 1;
        let piece: Vec<u8> = redis::cmd("GETRANGE")
            .arg(&file.key)
            .arg(at)
            .arg(end)
            .query_async(conn)
            .await
            .map_err(|e| FetchError::Redis(e.to_string()))?;
        if piece.len() as u64 != end + 1 - at {
            // It expired or was replaced while being read.
            return Err(if piece.is_empty() {
                FetchError::Missing
            } else {
                FetchError::Mismatch
            });
        }
        hash.update(&piece);
        out.write_all(&piece).await.map_err(local)?;
        at = end + 1;
    }
    out.flush().await.map_err(local)?;
    if hex::encode(hash.finalize()) != file.sha256 {
        return Err(FetchError::Mismatch);
    }
    Ok(Fetched { path, size: len })
}

/// Deletes a blob that was sent (or can never be); a failure is only
/// logged: the blob's TTL removes it anyway.
pub async fn delete<C: ConnectionLike + Send>(conn: &mut C, key: &str) {
    let deleted = redis::cmd("DEL").arg(key).query_async::<i64>(conn).await;
    if let Err(e) = deleted {
        tracing::warn!(key, error = %e, "deleting a file's blob; it expires on its own");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_testkit::RedisServer;

    fn attachment(agent: &AgentId, bytes: &[u8]) -> Attachment {
        Attachment {
            key: remoteagent_proto::names::blob_key(agent, "b1"),
            name: "../report.pdf".into(),
            mime: "application/pdf".into(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }

    #[tokio::test]
    async fn a_blob_is_fetched_only_when_it_is_what_the_event_says() {
        let server = RedisServer::start().unwrap();
        let mut conn = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let agent = AgentId::parse("a1").unwrap();
        // Over two pieces, so the pieces are put together in order.
        let bytes: Vec<u8> = (0..(PIECE as usize * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let file = attachment(&agent, &bytes);
        let () = redis::cmd("SET")
            .arg(&file.key)
            .arg(&bytes)
            .query_async(&mut conn)
            .await
            .unwrap();
        let fetched = fetch(&mut conn, &agent, &file).await.unwrap();
        assert_eq!(std::fs::read(&fetched.path).unwrap(), bytes);
        let doc = fetched.document(&file, None);
        assert_eq!(doc.file_name, "report.pdf");

        // Another hash, another size, another agent's key, a missing key.
        let mut wrong = file.clone();
        wrong.sha256 = "0".repeat(64);
        assert_eq!(
            fetch(&mut conn, &agent, &wrong).await.unwrap_err(),
            FetchError::Mismatch
        );
        let mut wrong = file.clone();
        wrong.size += 1;
        assert_eq!(
            fetch(&mut conn, &agent, &wrong).await.unwrap_err(),
            FetchError::Mismatch
        );
        let other = AgentId::parse("a2").unwrap();
        assert_eq!(
            fetch(&mut conn, &other, &file).await.unwrap_err(),
            FetchError::Invalid
        );
        delete(&mut conn, &file.key).await;
        assert_eq!(
            fetch(&mut conn, &agent, &file).await.unwrap_err(),
            FetchError::Missing
        );
    }
}
