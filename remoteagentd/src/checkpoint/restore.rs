//! Undo: the files a run changed put back as they were before it, every
//! other file left alone. Refused, naming them, when one changed again
//! since the run (unless forced). The undo is itself checkpointed under
//! the answer's session id, so it can be undone in turn.

use std::collections::HashSet;
use std::path::Path;

use remoteagent_proto::checkpoints::ChangesPayload;
use remoteagent_proto::{AgentId, SessionId};

use super::changes::{Change, changes_payload, run_changes};
use super::git::Repo;
use super::snapshot::{Side, TempIndex, set_ref, working_commit};
use super::{CheckpointError, both_sides, ref_name, safe_relative};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoOutcome {
    /// Restored these paths; `changes` is what the undo changed (its own
    /// card), recorded as the answer's checkpoint.
    Undone {
        restored: Vec<String>,
        changes: Option<ChangesPayload>,
    },
    /// Nothing was restored: these files changed again since the run.
    Refused { changed_since: Vec<String> },
}

/// Undoes the run `run` of `agent` in the git project holding `dir`.
pub async fn undo(
    dir: &Path,
    agent: &AgentId,
    run: &SessionId,
    answer: &SessionId,
    force: bool,
) -> Result<UndoOutcome, CheckpointError> {
    let repo = find(dir).await?;
    let (before, after) = both_sides(&repo, agent, run).await?;
    let changes = run_changes(&repo, &before, &after).await?;
    let now = working_commit(&repo, &format!("{answer} before")).await?;
    let changed_since = changed_since(&repo, &after, &now, &changes).await?;
    if !changed_since.is_empty() && !force {
        return Ok(UndoOutcome::Refused { changed_since });
    }
    set_ref(&repo, &ref_name(agent, answer, Side::Before), &now).await?;
    restore_paths(&repo, &before, &changes).await?;
    let undone = working_commit(&repo, &format!("{answer} after")).await?;
    set_ref(&repo, &ref_name(agent, answer, Side::After), &undone).await?;
    let own = run_changes(&repo, &now, &undone).await?;
    Ok(UndoOutcome::Undone {
        restored: changes.into_iter().map(|c| c.path).collect(),
        changes: changes_payload(&own, None),
    })
}

pub(crate) async fn find(dir: &Path) -> Result<Repo, CheckpointError> {
    Repo::find(dir)
        .await?
        .ok_or_else(|| CheckpointError::Refused("the project is not a git repository".into()))
}

/// The run's paths that differ between `after` and the commit `now`.
pub(crate) async fn changed_since(
    repo: &Repo,
    after: &str,
    now: &str,
    changes: &[Change],
) -> Result<Vec<String>, CheckpointError> {
    let run: HashSet<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    Ok(run_changes(repo, after, now)
        .await?
        .into_iter()
        .filter(|c| run.contains(c.path.as_str()))
        .map(|c| c.path)
        .collect())
}

/// Puts `changes`' paths in the working tree back as they are in the
/// commit `before`: contents, modes and symlinks through `checkout-index`
/// from a temporary index; files `before` did not have are removed (and
/// the folders that leaves empty).
pub(crate) async fn restore_paths(
    repo: &Repo,
    before: &str,
    changes: &[Change],
) -> Result<(), CheckpointError> {
    for c in changes.iter().filter(|c| !c.in_before()) {
        if !safe_relative(&c.path) {
            tracing::warn!(path = %c.path, "not removing a path that is not plainly relative");
            continue;
        }
        remove_file_and_empty_parents(&repo.top, &c.path)?;
    }
    let wanted: Vec<&Change> = changes.iter().filter(|c| c.in_before()).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let index = TempIndex::empty(repo);
    repo.git()
        .index(index.path())
        .args(["read-tree", before])
        .output()
        .await?;
    let mut list = Vec::new();
    for c in wanted {
        // A file the run turned into a folder: the folder's files were
        // removed above; whatever is left in it stays and git says so.
        let full = repo.top.join(&c.path);
        if full.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false) {
            let _ = std::fs::remove_dir(&full);
        }
        list.extend_from_slice(c.path.as_bytes());
        list.push(0);
    }
    repo.git()
        .index(index.path())
        .args(["checkout-index", "-f", "-z", "--stdin"])
        .stdin(list)
        .output()
        .await?;
    Ok(())
}

fn remove_file_and_empty_parents(top: &Path, rel: &str) -> Result<(), CheckpointError> {
    let full = top.join(rel);
    match full.symlink_metadata() {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => std::fs::remove_file(&full)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut parent = full.parent();
    while let Some(p) = parent {
        if p == top || !p.starts_with(top) || std::fs::remove_dir(p).is_err() {
            break;
        }
        parent = p.parent();
    }
    Ok(())
}
