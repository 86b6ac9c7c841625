//! The files a user sent that wait for their prompt: one record per user
//! and chat in Redis (`ra:attach:{chat}:{user}`, JSON), shared by the
//! replicas. The bytes are not here: each file is a blob
//! (`blob:{agentId}:{blobId}`) with its own TTL; the record outlives them
//! (a day), so that a message arriving after they expired can say so.

use redis::aio::ConnectionManager;
use remoteagent_proto::files::{Attachment, BLOB_TTL_SECS};
use remoteagent_proto::{AgentId, names, now_secs};
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
pub async fn load(
    redis: &ConnectionManager,
    chat: i64,
    user: i64,
) -> redis::RedisResult<Option<Pending>> {
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

pub async fn save(
    redis: &ConnectionManager,
    chat: i64,
    user: i64,
    pending: &Pending,
) -> redis::RedisResult<()> {
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
pub async fn clear(redis: &ConnectionManager, chat: i64, user: i64) -> redis::RedisResult<()> {
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
    redis: &ConnectionManager,
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
            // The id is random, so nothing is overwritten; RENAME keeps the
            // TTL and fails when the blob is gone.
            let moved: redis::RedisResult<()> = redis::cmd("RENAME")
                .arg(&a.key)
                .arg(&to)
                .query_async(&mut conn)
                .await;
            match moved {
                Ok(()) => a.key = to,
                Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
                    out.push(gone(file, a, now));
                    continue;
                }
                Err(e) => return Err(e),
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

fn gone(file: &PendingFile, a: Attachment, now: u64) -> Readied {
    if file.aged(now) {
        Readied::Aged(a)
    } else {
        Readied::Lost(a)
    }
}

/// Deletes the blobs of `files` (dropped with their prompt).
pub async fn delete_blobs(
    redis: &ConnectionManager,
    files: &[PendingFile],
) -> redis::RedisResult<()> {
    if files.is_empty() {
        return Ok(());
    }
    let mut del = redis::cmd("DEL");
    for f in files {
        del.arg(&f.attachment.key);
    }
    del.query_async::<i64>(&mut redis.clone()).await.map(|_| ())
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    now_secs()
}
