//! The base directories of every RemoteAgent program on this machine:
//! `remoteagentd` keeps its files there, and `remoteagentctl setup` writes
//! the config files the daemon and the local cloud read, so both must work
//! them out the same way.
//!
//! Every location honours `HOME` and the `XDG_*` variables, on every
//! platform, so a test (or a user) can move the whole installation into
//! another directory tree by setting them. Without them, Linux uses the XDG
//! defaults under `HOME` and macOS the `directories` crate's equivalents.

use std::path::{Path, PathBuf};

use crate::socket::APP_DIR;

/// The folders `remoteagent/` lives in, already joined with [`APP_DIR`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME/remoteagent`
    pub config: PathBuf,
    /// `$XDG_DATA_HOME/remoteagent`
    pub data: PathBuf,
    /// `$XDG_STATE_HOME/remoteagent`
    pub state: PathBuf,
}

/// No home directory: nothing can be placed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("cannot find the home directory: set HOME")]
pub struct NoHome;

/// `name` as an absolute directory, if set. XDG says relative values are
/// invalid and must be ignored.
pub fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

fn home() -> Result<PathBuf, NoHome> {
    env_dir("HOME")
        .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()))
        .ok_or(NoHome)
}

#[derive(Clone, Copy)]
enum BaseKind {
    Config,
    Data,
    State,
}

/// The platform default of a base directory when its XDG variable is unset.
fn platform_default(home: &Path, xdg_default: &str, kind: BaseKind) -> PathBuf {
    if cfg!(target_os = "macos")
        && let Some(dirs) = directories::BaseDirs::new()
    {
        return match kind {
            BaseKind::Config => dirs.config_dir().to_path_buf(),
            BaseKind::Data => dirs.data_dir().to_path_buf(),
            BaseKind::State => home.join("Library/Logs"),
        };
    }
    home.join(xdg_default)
}

impl Dirs {
    /// Computes the folders from the environment. Creates nothing.
    pub fn from_env() -> Result<Self, NoHome> {
        let home = home()?;
        let base = |var: &str, default: &str, kind| {
            env_dir(var)
                .unwrap_or_else(|| platform_default(&home, default, kind))
                .join(APP_DIR)
        };
        Ok(Dirs {
            config: base("XDG_CONFIG_HOME", ".config", BaseKind::Config),
            data: base("XDG_DATA_HOME", ".local/share", BaseKind::Data),
            state: base("XDG_STATE_HOME", ".local/state", BaseKind::State),
            home,
        })
    }

    /// The daemon's config file.
    pub fn daemon_config(&self) -> PathBuf {
        self.config.join("config.toml")
    }
}
