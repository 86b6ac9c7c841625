//! Checkpoints (ARCHITECTURE.md, Contracts: "Checkpoints"): the working
//! tree recorded before and after each run as commits on private refs,
//! `refs/remoteagent/<agent>/<session>/{before,after}`, and what the phone
//! or the computer asks of them: the diff, undo, commit, branch.
//!
//! Everything runs the real `git` (`git.rs`) with hooks disabled and a
//! temporary index (`snapshot.rs`): the user's index, HEAD, stash and
//! branches are never touched, except by an explicit commit (`commit.rs`),
//! which moves the current branch and refreshes the index entries of the
//! committed paths only. The API takes a folder, so a run in a git
//! worktree is checkpointed the same way as one in the project.

pub mod answer;
mod changes;
mod commit;
mod git;
mod html;
mod prune;
mod restore;
pub mod run;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use remoteagent_proto::{AgentId, SessionId};

pub use changes::{Change, changes_payload, diff_text, run_changes};
pub use commit::{branch, commit, propose_message};
pub use git::Repo;
pub use prune::{Retention, prune};
pub use restore::{UndoOutcome, undo};
pub use snapshot::{Side, snapshot};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("git could not be started: {0}")]
    NoGit(String),
    #[error("git: {0}")]
    Git(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A refusal in plain words (no checkpoint, detached HEAD, …).
    #[error("{0}")]
    Refused(String),
}

/// The private ref of one side of a run's checkpoint.
pub fn ref_name(agent: &AgentId, session: &SessionId, side: Side) -> String {
    format!("refs/remoteagent/{agent}/{session}/{}", side.as_str())
}

/// Marks a run that worked in a git worktree of its own (`worktrees =
/// true`): its `after` commit. Undo, commit and branch act on the project
/// folder, so they refuse such a run; its work stays on its branch.
pub fn worktree_ref(agent: &AgentId, session: &SessionId) -> String {
    format!("refs/remoteagent/{agent}/{session}/worktree")
}

/// The prefix of every checkpoint ref of an agent.
pub fn agent_prefix(agent: &AgentId) -> String {
    format!("refs/remoteagent/{agent}/")
}

/// The commit a checkpoint ref points at, if it exists.
pub async fn resolve(
    repo: &Repo,
    agent: &AgentId,
    session: &SessionId,
    side: Side,
) -> Result<Option<String>, CheckpointError> {
    let name = format!("{}^{{commit}}", ref_name(agent, session, side));
    let git = repo.git().args(["rev-parse", "-q", "--verify", &name]);
    match git.output().await {
        Ok(out) => Ok(Some(String::from_utf8_lossy(&out).trim().to_string())),
        Err(CheckpointError::Git(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Both sides of a run's checkpoint, or a refusal in words.
pub async fn both_sides(
    repo: &Repo,
    agent: &AgentId,
    run: &SessionId,
) -> Result<(String, String), CheckpointError> {
    let before = resolve(repo, agent, run, Side::Before).await?;
    let after = resolve(repo, agent, run, Side::After).await?;
    match (before, after) {
        (Some(b), Some(a)) => Ok((b, a)),
        _ => Err(CheckpointError::Refused(
            "this agent has no checkpoint of that run (it changed no files, \
             ran outside a git project, or its checkpoint was pruned)"
                .into(),
        )),
    }
}

/// The newest run of the agent with both sides recorded (for
/// `remoteagentctl diff NAME` without `--session`).
pub async fn last_run(repo: &Repo, agent: &AgentId) -> Result<Option<SessionId>, CheckpointError> {
    let out = repo
        .git()
        .args([
            "for-each-ref",
            "--sort=-creatordate",
            "--format=%(refname)",
            &agent_prefix(agent),
        ])
        .text()
        .await?;
    let prefix = agent_prefix(agent);
    Ok(out
        .lines()
        .filter_map(|r| r.strip_prefix(&prefix)?.strip_suffix("/after"))
        .find_map(|s| SessionId::parse(s).ok()))
}

/// The agents already told their project is not a git repository (once
/// per agent per daemon process).
static TOLD_NOT_A_REPO: Mutex<Option<HashSet<AgentId>>> = Mutex::new(None);

/// The notice for a project that is not a git repository, the first time
/// only for this agent.
pub fn not_a_repo_notice(agent: &AgentId) -> Option<String> {
    let mut told = TOLD_NOT_A_REPO.lock().ok()?;
    let first = told.get_or_insert_with(HashSet::new).insert(agent.clone());
    first.then(|| "no checkpoint (not a git repository)".to_string())
}

/// Whether `path` (from a git tree) is a plain relative path that stays in
/// the working tree: git checks this when it writes trees, we check again
/// before deleting anything.
pub(crate) fn safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && !p.is_absolute()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(n) if n != ".git"))
}
