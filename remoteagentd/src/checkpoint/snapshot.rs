//! The working tree as a commit, without touching the user's index: a
//! temporary index (`GIT_INDEX_FILE`) seeded from the user's (so `git add
//! -A` only rehashes what changed since the last `git status`), then
//! `add -A` (tracked and untracked files, `.gitignore` honoured),
//! `write-tree`, `commit-tree` and `update-ref` on the private ref.

use std::path::{Path, PathBuf};

use remoteagent_proto::{AgentId, SessionId};

use super::git::Repo;
use super::{CheckpointError, ref_name};

/// Which side of a run a checkpoint records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Before,
    After,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Before => "before",
            Side::After => "after",
        }
    }
}

/// The identity of checkpoint commits: they are ours, not the user's.
const CHECKPOINT_NAME: &str = "RemoteAgent checkpoint";
const CHECKPOINT_EMAIL: &str = "remoteagent@localhost";

/// How far back from now an entry of the user's index is checked by
/// content rather than trusted by its stat data (see [`TempIndex::seeded`]).
const RECHECKED: std::time::Duration = std::time::Duration::from_secs(5);

/// A temporary index file in the worktree's git dir, removed on drop.
pub(crate) struct TempIndex {
    path: PathBuf,
}

impl TempIndex {
    /// An empty one (no file yet: git starts from nothing).
    pub fn empty(repo: &Repo) -> TempIndex {
        let n: u64 = rand::random();
        TempIndex {
            path: repo
                .git_dir
                .join(format!("remoteagent-index-{}-{n:016x}", std::process::id())),
        }
    }

    /// A copy of the user's index (its stat data makes `add -A` fast); an
    /// empty one when the repository has none yet. The user's index is
    /// replaced by rename when git writes it, so a copy is never half.
    pub async fn seeded(repo: &Repo) -> Result<TempIndex, CheckpointError> {
        let tmp = TempIndex::empty(repo);
        match tokio::fs::copy(&repo.index, &tmp.path).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tmp),
            Err(e) => return Err(e.into()),
        }
        // Git trusts an entry's stat data only when the file is older than
        // the index ("racy git"); an edit that kept the size, made in the
        // same second as the entry was recorded, looks unchanged otherwise.
        // A fresh copy would have a fresh mtime and trust every entry, so the
        // copy is dated at the index's own mtime, and no later than a few
        // seconds ago: the entries recorded in those seconds are checked by
        // content, which also covers an index git rewrote since (a run's
        // edits are seconds old). Older entries keep git's own rule.
        let (from, to) = (repo.index.clone(), tmp.path.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let recent = std::time::SystemTime::now() - RECHECKED;
            let modified = std::fs::metadata(&from)?.modified()?.min(recent);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&to)?
                .set_modified(modified)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(tmp)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempIndex {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.path.with_extension("lock"));
    }
}

/// The commit HEAD points at, or `None` on an unborn branch.
pub(crate) async fn head_commit(repo: &Repo) -> Result<Option<String>, CheckpointError> {
    let out = repo
        .git()
        .args(["rev-parse", "-q", "--verify", "HEAD^{commit}"])
        .output()
        .await;
    match out {
        Ok(o) => Ok(Some(String::from_utf8_lossy(&o).trim().to_string())),
        Err(CheckpointError::Git(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The working tree now, as a tree id.
pub(crate) async fn working_tree(repo: &Repo) -> Result<String, CheckpointError> {
    let index = TempIndex::seeded(repo).await?;
    repo.git()
        .index(index.path())
        .args(["add", "-A", "--", "."])
        .output()
        .await?;
    repo.git()
        .index(index.path())
        .args(["write-tree"])
        .text()
        .await
}

/// The working tree now, as a checkpoint commit (parent: HEAD) that no
/// ref holds yet.
pub(crate) async fn working_commit(repo: &Repo, what: &str) -> Result<String, CheckpointError> {
    let tree = working_tree(repo).await?;
    let mut args = vec!["commit-tree".to_string(), tree];
    if let Some(head) = head_commit(repo).await? {
        args.extend(["-p".to_string(), head]);
    }
    args.extend(["-m".to_string(), format!("remoteagent checkpoint: {what}")]);
    repo.git()
        .env("GIT_AUTHOR_NAME", CHECKPOINT_NAME)
        .env("GIT_AUTHOR_EMAIL", CHECKPOINT_EMAIL)
        .env("GIT_COMMITTER_NAME", CHECKPOINT_NAME)
        .env("GIT_COMMITTER_EMAIL", CHECKPOINT_EMAIL)
        .args(args)
        .text()
        .await
}

pub(crate) async fn set_ref(repo: &Repo, name: &str, commit: &str) -> Result<(), CheckpointError> {
    repo.git()
        .args(["update-ref", "-m", "remoteagent checkpoint", name, commit])
        .output()
        .await
        .map(|_| ())
}

/// Records the working tree of the git project holding `dir` as the
/// `side` of the run `session` of `agent`; `None` when `dir` is in no git
/// working tree. Returns the commit.
pub async fn snapshot(
    dir: &Path,
    agent: &AgentId,
    session: &SessionId,
    side: Side,
) -> Result<Option<String>, CheckpointError> {
    let Some(repo) = Repo::find(dir).await? else {
        return Ok(None);
    };
    let commit = working_commit(&repo, &format!("{session} {}", side.as_str())).await?;
    set_ref(&repo, &ref_name(agent, session, side), &commit).await?;
    Ok(Some(commit))
}
