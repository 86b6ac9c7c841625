//! Worktrees for parallel runs (`worktrees = true` in a `[[project]]` of
//! the daemon's config): a prompt to a busy agent runs in a fresh
//! `git worktree` on a branch `ra/<agent>/<short>` instead of waiting.
//! What `remoteagentctl worktrees` and the bot's `/clean` exchange.

use serde::{Deserialize, Deserializer, Serialize};

use crate::SessionId;

/// `remoteagentctl worktrees NAME [--clean]`. Answered with a
/// [`crate::control::Response::Worktrees`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreesRequest {
    pub agent: String,
    /// Remove the finished worktrees (their branches stay).
    #[serde(default)]
    pub clean: bool,
}

/// One worktree of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorktreeInfo {
    /// `ra/<agent>/<short>`.
    pub branch: String,
    /// The worktree's folder (under the daemon's state folder).
    pub dir: String,
    /// A run still works in it.
    pub running: bool,
    /// When it was made, in ms since the epoch (0: unknown).
    #[serde(default)]
    pub created_ms: u64,
    /// Files changed and not committed (`git status`), when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_files: Option<u64>,
}

/// What `--clean` (or `/clean`) did to one finished worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanedWorktree {
    pub branch: String,
    /// Files the run left uncommitted, committed on the branch first so
    /// that nothing is lost.
    #[serde(default)]
    pub committed_files: u64,
    /// Why it was not removed; `None`: removed, its branch kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to a [`WorktreesRequest`]: the worktrees left after any
/// cleaning, and what was cleaned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentWorktrees {
    pub agent_name: String,
    /// The project folder.
    pub path: String,
    /// Whether the agent is set to run in worktrees when busy.
    #[serde(default)]
    pub enabled: bool,
    pub worktrees: Vec<WorktreeInfo>,
    #[serde(default)]
    pub cleaned: Vec<CleanedWorktree>,
}

/// The `clean_worktrees` command (`/clean`), answered on the output stream
/// of `session_id` with a `notice` saying what was removed, then `done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanWorktreesPayload {
    pub session_id: SessionId,
}

/// The part of an agent's presence value that says it takes parallel runs
/// (in worktrees), so the cloud sends a prompt at once instead of queueing
/// it. Absent or unreadable: false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceWorktrees {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub worktrees: bool,
}

impl PresenceWorktrees {
    /// Read from a presence value; anything unreadable is false.
    pub fn of(value: &str) -> PresenceWorktrees {
        serde_json::from_str(value).unwrap_or_default()
    }
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(matches!(value, Some(serde_json::Value::Bool(true))))
}

/// What the clean did, in words for the chat or the terminal: removed
/// worktrees (their branches kept) and the ones that could not be.
pub fn cleaned_text(agent_name: &str, cleaned: &[CleanedWorktree], running: usize) -> String {
    let removed: Vec<&CleanedWorktree> = cleaned.iter().filter(|c| c.error.is_none()).collect();
    let mut text = if removed.is_empty() {
        format!("No finished worktree of {agent_name} to remove.")
    } else {
        let branches: Vec<&str> = removed.iter().map(|c| c.branch.as_str()).collect();
        format!(
            "Removed {} of {agent_name}; their branches are kept, so the work is not lost: {}.",
            crate::text::plural::count(
                removed.len() as u64,
                "finished worktree",
                "finished worktrees"
            ),
            branches.join(", ")
        )
    };
    let committed: u64 = removed.iter().map(|c| c.committed_files).sum();
    if committed > 0 {
        text.push_str(&format!(
            " {} left uncommitted {} committed on {} branch first.",
            crate::text::plural::count(committed, "file", "files"),
            if committed == 1 { "was" } else { "were" },
            if removed.len() == 1 { "its" } else { "their" },
        ));
    }
    for c in cleaned {
        if let Some(e) = &c.error {
            text.push_str(&format!("\nNot removed: {} ({e}).", c.branch));
        }
    }
    if running > 0 {
        text.push_str(&format!(
            "\n{} still running, left alone.",
            crate::text::plural::count(running as u64, "worktree is", "worktrees are")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_reads_worktrees_leniently() {
        let of = |v: &str| PresenceWorktrees::of(v).worktrees;
        assert!(of(r#"{"hostname":"h","modes":true,"worktrees":true}"#));
        assert!(!of(r#"{"worktrees":false}"#));
        assert!(!of(r#"{"worktrees":"yes","modes":1}"#));
        assert!(!of(r#"{"hostname":"h"}"#));
        assert!(!of("1"));
    }

    #[test]
    fn cleaned_text_names_the_kept_branches() {
        let c = |b: &str, n, e: Option<&str>| CleanedWorktree {
            branch: b.into(),
            committed_files: n,
            error: e.map(str::to_string),
        };
        assert_eq!(
            cleaned_text("hello", &[], 0),
            "No finished worktree of hello to remove."
        );
        let t = cleaned_text(
            "hello",
            &[
                c("ra/hello/ab12", 2, None),
                c("ra/hello/cd34", 0, Some("git failed")),
            ],
            1,
        );
        assert!(
            t.starts_with("Removed 1 finished worktree of hello; their branches are kept"),
            "{t}"
        );
        assert!(
            t.contains("ra/hello/ab12.")
                && t.contains("2 files left uncommitted were committed on its branch first."),
            "{t}"
        );
        assert!(
            t.contains("Not removed: ra/hello/cd34 (git failed)."),
            "{t}"
        );
        assert!(t.contains("1 worktree is still running"), "{t}");
    }
}
