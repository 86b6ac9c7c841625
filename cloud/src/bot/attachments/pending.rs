//! The files a user sent that wait for their prompt: one record per user
//! and chat in Redis (`ra:attach:{chat}:{user}`, JSON), shared by the
//! replicas. The bytes are not here: each file is a blob
//! (`blob:{agentId}:{blobId}`) with its own TTL; the record outlives them
//! (a day), so that a message arriving after they expired can say so.

use remoteagent_proto::files::{Attachment, BLOB_TTL_SECS};
use remoteagent_proto::{AgentId, names, now_secs};
use remoteagent_rediskit::Conn;
use serde::{Deserialize, Serialize};

/// How long the record is kept after its last change.
const RECORD_TTL_SECS: u64 = 24 * 3600;

/// `ra:attach:{chat}:{user}`.
fn key(chat: i64, user: i64) -> String {
    format!("ra:attach:{chat}:{user}")
}

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFile {
    pub attachment: Attachment,
    /// When its blob was written (Unix seconds): it lives [`BLOB_TTL_SECS`].
    pub stored_at: u64,
}

impl PendingFile {
    /// Whether its blob's time is up (it waited too long for a prompt).
    pub fn aged(&self, now: u64) -> bool {
        now >= self.stored_at.saturating_add(BLOB_TTL_SECS)
    }
}

/// An album being received: Telegram sends one message per photo, the
/// caption with one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Album {
    pub id: String,
    pub caption: Option<String>,
}

/// The files waiting for a user's next prompt in one chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The agent the newest file was sent for (a group's settling album
    /// runs for it).
    pub agent: AgentId,
    pub files: Vec<PendingFile>,
    pub album: Option<Album>,
    /// Bumped with every file, so a settling album acts only when nothing
    /// arrived after it.
    pub seq: u64,
}

impl Pending {
    pub fn new(agent: AgentId) -> Self {
        Pending {
            agent,
            files: Vec::new(),
            album: None,
            seq: 0,
        }
    }

    /// The files whose blobs should still exist.
    pub fn live(&self, now: u64) -> impl Iterator<Item = &PendingFile> {
        self.files.iter().filter(move |f| !f.aged(now))
    }

    pub fn live_count(&self, now: u64) -> usize {
        self.live(now).count()
    }

    pub fn live_bytes(&self, now: u64) -> u64 {
        self.live(now).map(|f| f.attachment.size).sum()
    }
}

/// The user's record in `chat`, if any. A record that does not parse (a
/// newer or older cloud wrote it) is left to expire and counts as none.
pub async fn load(redis: &Conn, chat: i64, user: i64) -> redis::RedisResult<Option<Pending>> {
    let raw: Option<String> = redis::cmd("GET")
        .arg(key(chat, user))
        .query_async(&mut redis.clone())
        .await?;
    Ok(raw.and_then(|raw| match serde_json::from_str(&raw) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(chat, user, error = %e, "ignoring an unreadable attachment record");
            None
        }
    }))
}

pub async fn save(redis: &Conn, chat: i64, user: i64, pending: &Pending) -> redis::RedisResult<()> {
    let json = serde_json::to_string(pending).map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::Client,
            "encoding the attachment record",
            e.to_string(),
        ))
    })?;
    redis::cmd("SET")
        .arg(key(chat, user))
        .arg(json)
        .arg("EX")
        .arg(RECORD_TTL_SECS)
        .query_async(&mut redis.clone())
        .await
}

/// Forgets the record (its files went with a prompt, or were dropped).
pub async fn clear(redis: &Conn, chat: i64, user: i64) -> redis::RedisResult<()> {
    redis::cmd("DEL")
        .arg(key(chat, user))
        .query_async::<i64>(&mut redis.clone())
        .await
        .map(|_| ())
}

/// What became of a file when a prompt came for `agent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readied {
    /// Its blob is `agent`'s, with a fresh TTL.
    Ready(Attachment),
    /// It waited longer than its blob lives.
    Aged(Attachment),
    /// Its blob is gone before its time (Redis lost or evicted it).
    Lost(Attachment),
}

/// Gives each blob a fresh TTL under `agent`'s keys (a file sent before a
/// `/use` moves to the agent the prompt goes to: blob keys are per agent,
/// and an agent may read only its own).
pub async fn ready_for(
    redis: &Conn,
    agent: &AgentId,
    files: &[PendingFile],
    now: u64,
) -> redis::RedisResult<Vec<Readied>> {
    let mut conn = redis.clone();
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let mut a = file.attachment.clone();
        if !names::is_blob_key_of(agent, &a.key) {
            let id = a.key.rsplit(':').next().unwrap_or_default().to_string();
            let to = names::blob_key(agent, &id);
            if move_blob(&mut conn, &a.key, &to).await? {
                a.key = to;
            } else {
                out.push(gone(file, a, now));
                continue;
            }
        }
        let refreshed: i64 = redis::cmd("EXPIRE")
            .arg(&a.key)
            .arg(BLOB_TTL_SECS)
            .query_async(&mut conn)
            .await?;
        if refreshed == 1 {
            out.push(Readied::Ready(a));
        } else {
            out.push(gone(file, a, now));
        }
    }
    Ok(out)
}

/// Moves the blob `from` to the key `to`; false when it is gone. The id is
/// random, so nothing is overwritten.
///
/// A standalone server `RENAME`s it (keeping the TTL, failing when the
/// blob is gone). On a cluster the two keys are in different slots,
/// where `RENAME` is refused: the bytes are copied (`GET`, then `SET … EX
/// NX` under the new key) and only then is the old key deleted, so a copy
/// that fails leaves the file where it was and the error reaches the user
/// like any other.
async fn move_blob(conn: &mut Conn, from: &str, to: &str) -> redis::RedisResult<bool> {
    if !conn.is_cluster() {
        let moved: redis::RedisResult<()> = redis::cmd("RENAME")
            .arg(from)
            .arg(to)
            .query_async(conn)
            .await;
        return match moved {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => Ok(false),
            Err(e) => Err(e),
        };
    }
    let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(from).query_async(conn).await?;
    let Some(bytes) = bytes else {
        return Ok(false);
    };
    let written: Option<String> = redis::cmd("SET")
        .arg(to)
        .arg(bytes)
        .arg("EX")
        .arg(BLOB_TTL_SECS)
        .arg("NX")
        .query_async(conn)
        .await?;
    if written.is_none() {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "moving a file to another agent",
            format!("{to} exists already"),
        )));
    }
    if let Err(e) = redis::cmd("DEL").arg(from).query_async::<i64>(conn).await {
        // The copy is in place; the old blob expires with its TTL.
        tracing::warn!(key = from, error = %e, "deleting a moved file's old blob");
    }
    Ok(true)
}

fn gone(file: &PendingFile, a: Attachment, now: u64) -> Readied {
    if file.aged(now) {
        Readied::Aged(a)
    } else {
        Readied::Lost(a)
    }
}

/// Deletes the blobs of `files` (dropped with their prompt).
pub async fn delete_blobs(redis: &Conn, files: &[PendingFile]) -> redis::RedisResult<()> {
    if files.is_empty() {
        return Ok(());
    }
    let mut conn = redis.clone();
    if conn.is_cluster() {
        // Blobs of one agent are in many slots: one DEL each.
        for f in files {
            redis::cmd("DEL")
                .arg(&f.attachment.key)
                .query_async::<i64>(&mut conn)
                .await?;
        }
        return Ok(());
    }
    let mut del = redis::cmd("DEL");
    for f in files {
        del.arg(&f.attachment.key);
    }
    del.query_async::<i64>(&mut conn).await.map(|_| ())
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    now_secs()
}
