//! Files sent from the phone with a prompt (ARCHITECTURE.md, Contracts:
//! "Files"): fetched from their blob keys, checked, and saved in the
//! session's inbox before the runner starts.
//!
//! The inbox is `{root}/{agentId}/{sessionId}/` under the daemon's state
//! dir (`$XDG_STATE_HOME/remoteagent/inbox/`), never in the project: a
//! photo must not end up committed, and the project is the agent's to
//! rewrite. Folders are 0700 and files 0600. Each name goes through
//! `safe_file_name` again (the cloud's word is not trusted for a path) and
//! collisions get `-2`, `-3`, … before the extension.
//!
//! A command is all or nothing: a key that is not this agent's, a blob that
//! is gone, or one whose size or SHA-256 differs from what the signed
//! command says refuses the whole command, naming the file and the reason,
//! and whatever was saved is removed. An inbox lives as long as its
//! session's log: [`prune`] removes those whose log was pruned.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::ConnectionLike;
use remoteagent_proto::files::{Attachment, BLOB_TTL_SECS, safe_file_name, valid_sha256_hex};
use remoteagent_proto::{AgentId, SessionId, names};
use sha2::{Digest, Sha256};

use crate::paths::ensure_private_dir;
use crate::runner::invocation::size_text;
use crate::runner::{Attached, AttachedFile};

/// Files per command accepted by default (`[attachments] max_files`): above
/// the cloud's default, so the cloud's own limit answers first.
pub const DEFAULT_MAX_FILES: usize = 20;
/// Bytes of files per command accepted by default (`[attachments]
/// max_total_mb`, decimal megabytes as Telegram counts them).
pub const DEFAULT_MAX_TOTAL_MB: u64 = 100;
/// A megabyte as Telegram counts it.
pub const MB: u64 = 1000 * 1000;
/// Longest wait for one blob.
const GET_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest MIME type kept for the prompt.
const MAX_MIME_CHARS: usize = 100;

/// What one command may bring (`[attachments]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentLimits {
    pub max_files: usize,
    pub max_total_bytes: u64,
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        AttachmentLimits {
            max_files: DEFAULT_MAX_FILES,
            max_total_bytes: DEFAULT_MAX_TOTAL_MB * MB,
        }
    }
}

/// Where inboxes go and what a command may bring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxSettings {
    /// `$XDG_STATE_HOME/remoteagent/inbox/`.
    pub root: PathBuf,
    pub limits: AttachmentLimits,
}

/// `{root}/{agentId}/{sessionId}/`.
pub fn session_dir(root: &Path, agent: &AgentId, session: &SessionId) -> PathBuf {
    root.join(agent.as_str()).join(session.as_str())
}

/// Why a command with `attachments` is refused by `limits` before anything
/// is fetched, if it is.
pub fn limit_refusal(attachments: &[Attachment], limits: &AttachmentLimits) -> Option<String> {
    if attachments.len() > limits.max_files {
        return Some(format!(
            "{} files came with the prompt; this daemon takes at most {} per prompt ([attachments] max_files); nothing ran",
            attachments.len(),
            limits.max_files
        ));
    }
    let total = attachments
        .iter()
        .fold(0u64, |sum, a| sum.saturating_add(a.size));
    if total > limits.max_total_bytes {
        return Some(format!(
            "the files that came with the prompt hold {}; this daemon takes at most {} per prompt ([attachments] max_total_mb); nothing ran",
            size_text(total),
            size_text(limits.max_total_bytes)
        ));
    }
    None
}

/// What a refusal of a command with files adds: the files were not kept.
pub fn not_kept_note(attachments: &[Attachment]) -> String {
    match attachments {
        [] => String::new(),
        [one] => format!(
            " ({} was not kept: send it again with your prompt)",
            safe_file_name(&one.name)
        ),
        many => format!(
            " (the {} files sent with it were not kept: send them again with your prompt)",
            many.len()
        ),
    }
}

/// Fetches, checks and saves the command's files in the session's inbox;
/// `Err` is the refusal to tell the owner (nothing saved is left behind).
/// The blobs are deleted once every file is saved.
pub async fn receive(
    conn: &mut (impl ConnectionLike + Send),
    settings: &InboxSettings,
    agent: &AgentId,
    session: &SessionId,
    attachments: &[Attachment],
) -> Result<Attached, String> {
    if let Some(refusal) = limit_refusal(attachments, &settings.limits) {
        return Err(refusal);
    }
    // Every description is checked before anything is fetched.
    for a in attachments {
        check_description(agent, a)?;
    }
    let dir = session_dir(&settings.root, agent, session);
    match save_all(conn, settings, &dir, attachments).await {
        Ok(files) => {
            let mut del = redis::cmd("DEL");
            for a in attachments {
                del.arg(&a.key);
            }
            // Best effort: the blobs expire anyway.
            if let Err(e) = del.query_async::<i64>(conn).await {
                tracing::debug!(error = %e, "deleting fetched blobs");
            }
            tracing::info!(files = files.len(), dir = %dir.display(), "attachments saved in the inbox");
            Ok(Attached { dir, files })
        }
        Err(refusal) => {
            remove_dir(&dir);
            Err(refusal)
        }
    }
}

/// The shape of one description: its key names one of this agent's blobs,
/// its hash is a SHA-256.
fn check_description(agent: &AgentId, a: &Attachment) -> Result<(), String> {
    let name = safe_file_name(&a.name);
    if !names::is_blob_key_of(agent, &a.key) {
        return Err(format!(
            "the attached file {name} is not stored for this agent (its key is another's or malformed); nothing ran"
        ));
    }
    if !valid_sha256_hex(&a.sha256) {
        return Err(format!(
            "the attached file {name} has no valid SHA-256 to check it against; nothing ran"
        ));
    }
    Ok(())
}

async fn save_all(
    conn: &mut (impl ConnectionLike + Send),
    settings: &InboxSettings,
    dir: &Path,
    attachments: &[Attachment],
) -> Result<Vec<AttachedFile>, String> {
    let mut files = Vec::with_capacity(attachments.len());
    let mut taken: Vec<String> = Vec::new();
    for a in attachments {
        let name = safe_file_name(&a.name);
        let bytes = fetch(conn, a, &name).await?;
        let file_name = unique_name(&name, &taken);
        taken.push(file_name.clone());
        let path = dir.join(&file_name);
        let (root, dir_owned, path_owned) =
            (settings.root.clone(), dir.to_path_buf(), path.clone());
        // File system work off the async workers.
        tokio::task::spawn_blocking(move || write_private(&root, &dir_owned, &path_owned, &bytes))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| {
                format!(
                    "the attached file {name} could not be saved in the inbox ({e}); nothing ran"
                )
            })?;
        files.push(AttachedFile {
            path,
            mime: clean_mime(&a.mime),
            size: a.size,
        });
    }
    Ok(files)
}

/// One blob's bytes, checked against its description.
async fn fetch(
    conn: &mut (impl ConnectionLike + Send),
    a: &Attachment,
    name: &str,
) -> Result<Vec<u8>, String> {
    let mut get = redis::cmd("GET");
    get.arg(&a.key);
    let got = tokio::time::timeout(GET_TIMEOUT, get.query_async::<Option<Vec<u8>>>(conn)).await;
    let bytes = match got {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(Ok(None)) => {
            return Err(format!(
                "the attached file {name} is no longer stored (files wait {} minutes to be fetched); nothing ran",
                BLOB_TTL_SECS / 60
            ));
        }
        Ok(Err(e)) => {
            return Err(format!(
                "the attached file {name} could not be fetched from Redis ({}); nothing ran",
                e.kind_text()
            ));
        }
        Err(_) => {
            return Err(format!(
                "the attached file {name} could not be fetched from Redis within {} s; nothing ran",
                GET_TIMEOUT.as_secs()
            ));
        }
    };
    if bytes.len() as u64 != a.size {
        return Err(format!(
            "the attached file {name} has {} bytes, not the {} the command names: it was changed after it was sent; nothing ran",
            bytes.len(),
            a.size
        ));
    }
    let hash = hex::encode(Sha256::digest(&bytes));
    if hash != a.sha256 {
        return Err(format!(
            "the attached file {name} does not match its SHA-256: it was changed after it was sent; nothing ran"
        ));
    }
    Ok(bytes)
}

/// A short text for a Redis error: its kind and code, no more (an error
/// may quote the command).
trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for redis::RedisError {
    fn kind_text(&self) -> String {
        match self.code() {
            Some(code) => format!("{code}: {:?}", self.kind()),
            None => format!("{:?}", self.kind()),
        }
    }
}

/// Creates the inbox folders (0700) and writes `path` (0600, never over an
/// existing file).
fn write_private(root: &Path, dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    for d in [Some(root), dir.parent(), Some(dir)].into_iter().flatten() {
        ensure_private_dir(d).map_err(std::io::Error::other)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `name`, or `stem-2.ext`, `stem-3.ext`, … when `taken` has it.
pub fn unique_name(name: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == name) {
        return name.to_string();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    (2..)
        .map(|n| format!("{stem}-{n}{ext}"))
        .find(|candidate| !taken.iter().any(|t| t == candidate))
        .unwrap_or_else(|| name.to_string())
}

/// A MIME type as the prompt shows it: `type/subtype` characters only.
fn clean_mime(mime: &str) -> String {
    let cleaned: String = mime
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "/.+-_".contains(*c))
        .take(MAX_MIME_CHARS)
        .collect();
    if cleaned.is_empty() {
        "application/octet-stream".into()
    } else {
        cleaned
    }
}

fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an inbox"),
    }
}

/// Removes the agent's inboxes whose session log is gone (pruned, or never
/// written: a daemon that died while fetching), except `current`'s.
/// Blocking I/O: runs with the log pruning, off the session's task.
pub fn prune(root: &Path, log_root: &Path, agent: &AgentId, current: &SessionId) {
    let Ok(entries) = std::fs::read_dir(root.join(agent.as_str())) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(session) = entry
            .file_name()
            .to_str()
            .and_then(|n| SessionId::parse(n).ok())
        else {
            continue;
        };
        if &session == current {
            continue;
        }
        let log = crate::session_log::session_log_path(log_root, agent, &session);
        if std::fs::symlink_metadata(&log).is_err() {
            remove_dir(&entry.path());
            tracing::info!(agent = %agent, session = %session, "inbox of a pruned session deleted");
        }
    }
}

#[cfg(test)]
mod tests;
