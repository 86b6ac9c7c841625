//! Worktrees for parallel runs: an agent whose project says
//! `worktrees = true` (`[[project]]` in the config file) runs a prompt that
//! arrives while it is busy in a fresh `git worktree` on a new branch
//! `ra/<agent>/<short>`, instead of refusing it. The worktrees live under
//! the daemon's state folder (`$XDG_STATE_HOME/remoteagent/worktrees/
//! {agentId}/{short}`), never inside the project. `remoteagentctl
//! worktrees NAME` lists them; `--clean` and the bot's `/clean` remove the
//! finished ones and keep their branches ([`git`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use remoteagent_proto::AgentId;

pub mod answer;
pub mod git;

/// Which projects run parallel prompts in worktrees, and where.
#[derive(Debug, Clone, Default)]
pub struct WorktreeSettings {
    /// `$XDG_STATE_HOME/remoteagent/worktrees/`.
    pub root: PathBuf,
    /// The projects with `worktrees = true` (absolute, `~/` expanded).
    pub projects: Vec<PathBuf>,
    /// The worktrees a run works in right now, daemon-wide.
    pub running: Running,
}

impl WorktreeSettings {
    /// Whether the project in `path` takes parallel runs (compared
    /// canonicalized, as the approval policies are).
    pub fn enabled_for(&self, path: &Path) -> bool {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let wanted = canonical(path);
        self.projects.iter().any(|p| canonical(p) == wanted)
    }

    /// The folder of one agent's worktrees.
    pub fn agent_root(&self, agent: &AgentId) -> PathBuf {
        self.root.join(agent.as_str())
    }
}

/// Said after `started` of a run in a worktree.
pub fn running_notice(agent_name: &str, branch: &str) -> String {
    format!(
        "Running in a git worktree on the new branch {branch} (from the last commit) because \
{agent_name} is busy with another run; this run starts a new session and leaves the project \
folder alone. Remove finished worktrees with /clean (the branch stays)."
    )
}

/// The worktree folders runs work in now; a [`Lease`] holds one.
#[derive(Debug, Clone, Default)]
pub struct Running(Arc<Mutex<HashSet<PathBuf>>>);

impl Running {
    /// Marks `dir` running until the lease is dropped.
    pub fn lease(&self, dir: PathBuf) -> Lease {
        if let Ok(mut set) = self.0.lock() {
            set.insert(dir.clone());
        }
        Lease {
            running: self.clone(),
            dir,
        }
    }

    pub fn contains(&self, dir: &Path) -> bool {
        self.0.lock().map(|s| s.contains(dir)).unwrap_or(true)
    }
}

/// A run's hold on its worktree: finished once dropped (the run's end).
#[derive(Debug)]
pub struct Lease {
    running: Running,
    dir: PathBuf,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut set) = self.running.0.lock() {
            set.remove(&self.dir);
        }
    }
}
