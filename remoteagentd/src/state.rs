//! Paired agents' metadata: one JSON file per agent in
//! `$XDG_DATA_HOME/remoteagent/agents/{agentId}.json`, mode 0600.
//!
//! The JWT is never part of it: it lives in the secret store. Files are
//! written to `{file}.partial` and renamed, so a crash mid-write leaves the
//! old file or the new one, never half of one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use remoteagent_proto::AgentId;
use remoteagent_proto::runner::RunnerSpec;
use serde::{Deserialize, Serialize};

use crate::paths::{PathsError, ensure_private_dir};

/// What the daemon remembers about a paired agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMeta {
    pub id: AgentId,
    pub name: String,
    /// The canonical project folder.
    pub path: PathBuf,
    pub runner: RunnerSpec,
    pub cloud_url: String,
    /// `redis://host:port`, without credentials.
    pub redis_url: String,
    /// The agent's Redis ACL user; empty when the server has no ACL.
    #[serde(default)]
    pub redis_username: String,
    /// base64url Ed25519 key of the cloud, pinned at pairing.
    pub cloud_public_key: String,
    pub paired_at_ms: u64,
    /// The runner's last conversation id (Claude's session id, Codex's
    /// thread id), resumed by the next prompt that continues. Not a secret:
    /// it only names a transcript on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Dir(#[from] PathsError),
    #[error("{action} {path}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{path} is not valid agent metadata: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// The agents directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: PathBuf) -> Self {
        StateDir { dir }
    }

    pub fn file(&self, id: &AgentId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes (or replaces) an agent's metadata atomically, mode 0600.
    pub fn save(&self, meta: &AgentMeta) -> Result<(), StateError> {
        ensure_private_dir(&self.dir)?;
        let path = self.file(&meta.id);
        let partial = self.dir.join(format!("{}.json.partial", meta.id));
        let json = serde_json::to_vec_pretty(meta).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(io_err(&partial, "creating"))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(io_err(&partial, "writing"))?;
        std::fs::rename(&partial, &path).map_err(io_err(&path, "renaming into"))?;
        Ok(())
    }

    /// Every agent on disk. A file that cannot be read is returned as an
    /// error next to the good ones, so one corrupt file hides no other agent.
    pub fn load_all(&self) -> Result<Vec<Result<AgentMeta, StateError>>, StateError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir, "listing")(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir, "listing"))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            out.push(Self::load_file(&path));
        }
        Ok(out)
    }

    fn load_file(path: &Path) -> Result<AgentMeta, StateError> {
        let bytes = std::fs::read(path).map_err(io_err(path, "reading"))?;
        let mut meta: AgentMeta =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: path.to_path_buf(),
                source,
            })?;
        // Metadata written before names were cleaned of bidi and invisible
        // characters is cleaned as it is read, so `list` and name lookups
        // see the clean name.
        meta.name = crate::util::names::clean_agent_name(&meta.name, meta.id.as_str());
        Ok(meta)
    }

    /// Removes an agent's metadata; a missing file is not an error.
    pub fn remove(&self, id: &AgentId) -> Result<(), StateError> {
        let path = self.file(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path, "removing")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn meta() -> AgentMeta {
        AgentMeta {
            id: AgentId::generate(),
            name: "web".into(),
            path: "/tmp/web".into(),
            runner: RunnerSpec::default(),
            cloud_url: "http://c".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_username: String::new(),
            cloud_public_key: "k".into(),
            paired_at_ms: 1,
            conversation: Some("3f6d1c2e-8a4b".into()),
        }
    }

    #[test]
    fn save_load_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("agents"));
        assert!(state.load_all().unwrap().is_empty());
        let m = meta();
        state.save(&m).unwrap();
        assert_eq!(
            std::fs::metadata(state.file(&m.id)).unwrap().mode() & 0o777,
            0o600
        );
        std::fs::write(tmp.path().join("agents/broken.json"), "{").unwrap();
        let all = state.load_all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all.iter().filter(|r| r.is_err()).count(), 1);
        assert!(all.iter().any(|r| r.as_ref().ok() == Some(&m)));
        state.remove(&m.id).unwrap();
        state.remove(&m.id).unwrap();
        assert_eq!(state.load_all().unwrap().len(), 1);
    }

    #[test]
    fn the_conversation_is_kept_and_older_files_still_load() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().to_path_buf());
        let m = meta();
        state.save(&m).unwrap();
        let text = std::fs::read_to_string(state.file(&m.id)).unwrap();
        assert!(
            text.contains(r#""conversation": "3f6d1c2e-8a4b""#),
            "{text}"
        );
        // A file from before conversations were kept has no such field.
        let older = AgentMeta {
            conversation: None,
            ..meta()
        };
        state.save(&older).unwrap();
        let text = std::fs::read_to_string(state.file(&older.id)).unwrap();
        assert!(!text.contains("conversation"), "{text}");
        let all = state.load_all().unwrap();
        assert!(all.iter().any(|r| r.as_ref().ok() == Some(&m)));
        assert!(all.iter().any(|r| r.as_ref().ok() == Some(&older)));
    }
}
