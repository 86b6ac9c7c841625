//! Commit a run's changes, and only them: the tree is HEAD's with the
//! run's paths set as they are in `after` (a temporary index), committed
//! with the user's identity and config (hooks off), the branch moved only
//! if it still points where it did. Never pushed. Branch: the same commit
//! on a new branch `ra/<agent>/<short>`, HEAD not moved, and the run's
//! files put back as they were before the run.

use std::path::Path;

use remoteagent_proto::checkpoints::MAX_COMMIT_MESSAGE_BYTES;
use remoteagent_proto::{AgentId, SessionId};

use super::changes::{Change, NULL_OID, run_changes};
use super::git::Repo;
use super::restore::{changed_since, find, restore_paths};
use super::snapshot::{TempIndex, head_commit, working_commit};
use super::{CheckpointError, both_sides};

/// What a commit made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Abbreviated commit id.
    pub commit: String,
    /// The branch it is on (short name).
    pub branch: String,
    pub files: u64,
}

/// Commits the run's changes on the current branch.
pub async fn commit(
    dir: &Path,
    agent: &AgentId,
    run: &SessionId,
    message: &str,
) -> Result<Committed, CheckpointError> {
    let message = checked_message(message)?;
    let repo = find(dir).await?;
    let (before, after) = both_sides(&repo, agent, run).await?;
    let changes = run_changes(&repo, &before, &after).await?;
    let branch_ref = repo
        .git()
        .args(["symbolic-ref", "-q", "HEAD"])
        .output()
        .await
        .map_err(|_| {
            CheckpointError::Refused(
                "HEAD is detached: there is no current branch to commit on (use Branch)".into(),
            )
        })?;
    let branch_ref = String::from_utf8_lossy(&branch_ref).trim().to_string();
    let head = head_commit(&repo).await?;
    let new = commit_changes(&repo, head.as_deref(), &changes, &message).await?;
    repo.git()
        .args([
            "update-ref",
            "-m",
            "remoteagent: commit the run's changes",
            &branch_ref,
            &new,
            head.as_deref().unwrap_or(NULL_OID),
        ])
        .output()
        .await
        .map_err(|e| {
            CheckpointError::Refused(format!(
                "the branch moved meanwhile ({e}); nothing was committed"
            ))
        })?;
    refresh_index(&repo, &changes).await?;
    Ok(Committed {
        commit: short(&new),
        branch: branch_ref.trim_start_matches("refs/heads/").to_string(),
        files: changes.len() as u64,
    })
}

/// Commits the run's changes on a new branch `ra/<agent>/<short>` (HEAD
/// and the current branch stay), then puts the run's files back as they
/// were before the run. Refused, naming them, when one changed since.
pub async fn branch(
    dir: &Path,
    agent: &AgentId,
    agent_name: &str,
    run: &SessionId,
    message: &str,
) -> Result<Committed, CheckpointError> {
    let message = checked_message(message)?;
    let repo = find(dir).await?;
    let (before, after) = both_sides(&repo, agent, run).await?;
    let changes = run_changes(&repo, &before, &after).await?;
    let now = working_commit(&repo, "before branch").await?;
    let edited = changed_since(&repo, &after, &now, &changes).await?;
    if !edited.is_empty() {
        return Err(CheckpointError::Refused(format!(
            "these files changed again since the run, so they cannot be put back: {}",
            edited.join(", ")
        )));
    }
    let head = head_commit(&repo).await?;
    let new = commit_changes(&repo, head.as_deref(), &changes, &message).await?;
    let short_run: String = run
        .as_str()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    let name = format!("ra/{}/{short_run}", ref_safe(agent_name));
    repo.git()
        .args([
            "update-ref",
            "-m",
            "remoteagent: branch",
            &format!("refs/heads/{name}"),
            &new,
            NULL_OID,
        ])
        .output()
        .await
        .map_err(|_| CheckpointError::Refused(format!("a branch {name} already exists")))?;
    restore_paths(&repo, &before, &changes).await?;
    Ok(Committed {
        commit: short(&new),
        branch: name,
        files: changes.len() as u64,
    })
}

/// A commit message proposed from the prompt's first line and the run's
/// final summary (when there is one).
pub fn propose_message(prompt: &str, summary: Option<&str>) -> String {
    let first = prompt
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("Changes by the agent");
    let mut subject: String = first.chars().take(72).collect();
    if subject.chars().count() < first.chars().count() {
        subject.push('…');
    }
    let mut message = subject;
    if let Some(s) = summary.map(str::trim).filter(|s| !s.is_empty()) {
        message.push_str("\n\n");
        message.push_str(s);
    }
    cut(&message, MAX_COMMIT_MESSAGE_BYTES).to_string()
}

fn checked_message(message: &str) -> Result<String, CheckpointError> {
    let m = message.trim();
    if m.is_empty() {
        return Err(CheckpointError::Refused(
            "the commit message is empty".into(),
        ));
    }
    if m.len() > MAX_COMMIT_MESSAGE_BYTES {
        return Err(CheckpointError::Refused(format!(
            "the commit message is longer than {MAX_COMMIT_MESSAGE_BYTES} bytes"
        )));
    }
    Ok(format!("{m}\n"))
}

/// HEAD's tree with the run's paths as in `after`, committed on HEAD.
async fn commit_changes(
    repo: &Repo,
    head: Option<&str>,
    changes: &[Change],
    message: &str,
) -> Result<String, CheckpointError> {
    if changes.is_empty() {
        return Err(CheckpointError::Refused("the run changed no files".into()));
    }
    let index = TempIndex::empty(repo);
    if let Some(h) = head {
        repo.git()
            .index(index.path())
            .args(["read-tree", h])
            .output()
            .await?;
    }
    repo.git()
        .index(index.path())
        .args(["update-index", "-z", "--index-info"])
        .stdin(index_info(changes))
        .output()
        .await?;
    let tree = repo
        .git()
        .index(index.path())
        .args(["write-tree"])
        .text()
        .await?;
    if let Some(h) = head {
        let head_tree = repo
            .git()
            .args(["rev-parse", &format!("{h}^{{tree}}")])
            .text()
            .await?;
        if head_tree == tree {
            return Err(CheckpointError::Refused(
                "the run's changes are already committed on this branch".into(),
            ));
        }
    }
    let mut args = vec!["commit-tree".to_string(), tree];
    if let Some(h) = head {
        args.extend(["-p".to_string(), h.to_string()]);
    }
    args.extend(["-F".to_string(), "-".to_string()]);
    repo.git()
        .args(args)
        .stdin(message.as_bytes().to_vec())
        .text()
        .await
        .map_err(|e| CheckpointError::Refused(format!("git could not make the commit: {e}")))
}

/// `update-index --index-info` lines setting each path as in `after`
/// (mode 0 removes it).
fn index_info(changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in changes {
        let line = if c.in_after() {
            format!("{} {}\t{}", c.new_mode, c.new_oid, c.path)
        } else {
            format!("0 {NULL_OID}\t{}", c.path)
        };
        out.extend_from_slice(line.as_bytes());
        out.push(0);
    }
    out
}

/// The user's index takes the committed entries, so `git status` shows
/// them committed; then its stat data is refreshed.
async fn refresh_index(repo: &Repo, changes: &[Change]) -> Result<(), CheckpointError> {
    repo.git()
        .args(["update-index", "-z", "--index-info"])
        .stdin(index_info(changes))
        .output()
        .await?;
    // Files the user edited since are "modified", which is the truth.
    let _ = repo
        .git()
        .args(["update-index", "-q", "--refresh"])
        .succeeds()
        .await;
    Ok(())
}

fn short(commit: &str) -> String {
    commit.chars().take(10).collect()
}

/// An agent name as a piece of a branch name.
fn ref_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "agent".into() } else { s }
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
