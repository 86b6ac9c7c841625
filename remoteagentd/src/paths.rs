//! Where the daemon keeps its files (ARCHITECTURE.md, Contracts: "Local layout").
//!
//! The base directories (`HOME`, `XDG_*`, macOS defaults) are worked out by
//! `remoteagent_control::dirs`, shared with `remoteagentctl setup`.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

// The folder name and the socket path are shared with remoteagentctl.
use remoteagent_control::dirs::Dirs;
use remoteagent_control::socket::default_socket_path;

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot find the home directory: set HOME")]
    NoHome,
    #[error("{action} {path}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error(
        "{path} belongs to uid {owner}, not to us (uid {ours}); refusing to use it for the control socket"
    )]
    NotOurs {
        path: PathBuf,
        owner: u32,
        ours: u32,
    },
}

impl PathsError {
    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        PathsError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

/// Every location the daemon reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `$XDG_CONFIG_HOME/remoteagent/config.toml`
    pub config_file: PathBuf,
    /// `$XDG_DATA_HOME/remoteagent/agents/`: one `{agentId}.json` per agent.
    pub agents_dir: PathBuf,
    /// `$XDG_DATA_HOME/remoteagent/secrets/`: the opt-in file secret store.
    pub secrets_dir: PathBuf,
    /// `$XDG_STATE_HOME/remoteagent/logs/`: `{agentId}/{sessionId}.log`.
    pub log_root: PathBuf,
    /// `$XDG_STATE_HOME/remoteagent/envelopes/`: `{agentId}.seen`, the
    /// command envelopes already acted on (see `seen_envelopes`).
    pub envelopes_dir: PathBuf,
    /// `$XDG_STATE_HOME/remoteagent/inbox/`: `{agentId}/{sessionId}/`, the
    /// files sent from the phone with a prompt (see `inbox`).
    pub inbox_root: PathBuf,
    /// `$XDG_STATE_HOME/remoteagent/conversations/`: `{agentId}.json`, the
    /// agent's recent sessions (see `conversations`).
    pub conversations_dir: PathBuf,
    /// `$XDG_CONFIG_HOME/remoteagent/rules/`: `{agentId}.json`, the
    /// approval rules saved "always here" (see `approval::rules`); in the
    /// config directory, never in a project folder the agent can write.
    pub rules_dir: PathBuf,
    /// `$XDG_STATE_HOME/remoteagent/worktrees/`: `{agentId}/{short}/`, the
    /// git worktrees of parallel runs (see `worktrees`).
    pub worktrees_root: PathBuf,
    /// `$XDG_RUNTIME_DIR/remoteagent/remoteagentd.sock`.
    pub socket: PathBuf,
}

impl Paths {
    /// Computes the paths from the environment. Creates nothing.
    pub fn from_env() -> Result<Self, PathsError> {
        let dirs = Dirs::from_env().map_err(|_| PathsError::NoHome)?;
        Ok(Paths {
            config_file: dirs.daemon_config(),
            agents_dir: dirs.data.join("agents"),
            secrets_dir: dirs.data.join("secrets"),
            log_root: dirs.state.join("logs"),
            envelopes_dir: dirs.state.join("envelopes"),
            inbox_root: dirs.state.join("inbox"),
            conversations_dir: dirs.state.join("conversations"),
            rules_dir: dirs.config.join("rules"),
            worktrees_root: dirs.state.join("worktrees"),
            socket: default_socket_path(),
        })
    }

    /// The directory holding the control socket.
    pub fn socket_dir(&self) -> &Path {
        self.socket.parent().unwrap_or_else(|| Path::new("/"))
    }
}

/// Creates `dir` (and its parents) and makes sure it is ours and 0700.
///
/// A directory someone else created (in a shared temp dir) is refused rather
/// than used: its owner could replace our socket with theirs.
pub fn ensure_private_dir(dir: &Path) -> Result<(), PathsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PathsError::io(dir, "creating", e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| PathsError::io(dir, "inspecting", e))?;
    let ours = nix::unistd::geteuid().as_raw();
    if meta.uid() != ours || !meta.is_dir() {
        return Err(PathsError::NotOurs {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            ours,
        });
    }
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| PathsError::io(dir, "restricting permissions of", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_is_created_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }
}
