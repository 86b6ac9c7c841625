//! Checkpoints (ARCHITECTURE.md, Contracts: "Checkpoints"): what a run
//! changed in a git project, and what the phone or the computer asks of it.
//!
//! Before and after each run in a git project the daemon records the
//! working tree as commits on private refs,
//! `refs/remoteagent/<agent>/<session>/{before,after}`. A run that changed
//! files ends its output stream with a [`ChangesPayload`] (the `changes`
//! event, just before `done`), which the cloud shows as the diff card.
//! The card's buttons send a signed `checkpoint` command
//! ([`CheckpointPayload`]) answered on the output stream of the payload's
//! own `session_id`: `started`, then `checkpoint_result`
//! ([`CheckpointResult`]) and any `file` events (a long diff), then `done`.
//! An undo is itself checkpointed under that answer's `session_id`, so its
//! `changes` (sent on the same answer stream) carry a card of their own.

use serde::{Deserialize, Serialize};

use crate::SessionId;

/// Files listed on the diff card; the rest are counted.
pub const CARD_FILES: usize = 10;
/// Most files one `changes` event lists (the totals still count them all).
pub const MAX_LISTED_FILES: usize = 200;
/// Longest diff text carried inline by a [`CheckpointResult::Diff`], in
/// bytes; a longer diff travels as a `file` event and is cut here.
pub const MAX_INLINE_DIFF_BYTES: usize = 3_000;
/// Longest commit message accepted, in bytes.
pub const MAX_COMMIT_MESSAGE_BYTES: usize = 4_000;

/// How a file changed between `before` and `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Added,
    Modified,
    Deleted,
    /// Same content, other mode (e.g. made executable), or file ⇄ symlink.
    TypeChanged,
    /// A status this build does not know.
    #[serde(other)]
    Other,
}

/// One changed file, as `git diff --numstat` counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangedFile {
    /// Relative to the project folder, `/`-separated. Shown to people only
    /// after escaping; never used as a path by the cloud.
    pub path: String,
    pub status: FileStatus,
    /// Lines added and removed (0 and 0 for a binary file).
    #[serde(default)]
    pub added: u64,
    #[serde(default)]
    pub removed: u64,
    #[serde(default)]
    pub binary: bool,
}

/// The `changes` output event: what the run of this stream changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangesPayload {
    /// The changed files in path order, at most [`MAX_LISTED_FILES`].
    pub files: Vec<ChangedFile>,
    /// Every changed file, listed or not.
    pub files_total: u64,
    /// Lines added and removed over every changed file.
    pub added: u64,
    pub removed: u64,
    /// The branch the run worked on when it ran in its own git worktree
    /// (`worktrees = true`); absent for a run in the project folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree_branch: Option<String>,
}

/// The `checkpoint` command: one of the diff card's buttons (or the same
/// from `remoteagentctl`), on the checkpoint of the run `run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointPayload {
    /// The answer's own stream id (nothing else runs under it, except an
    /// undo, which is checkpointed under it).
    pub session_id: SessionId,
    /// The run whose `before`/`after` checkpoint this is about.
    pub run: SessionId,
    pub action: CheckpointAction,
}

/// What the user asked of a run's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckpointAction {
    /// The unified diff `before..after`: every file, or only the file at
    /// this index of the `changes` list (the card's [Next file]).
    Diff {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<u64>,
    },
    /// Restore the files the run changed to `before`. Refused, naming the
    /// files, when one changed again since `after`, unless `force`.
    Undo {
        #[serde(default)]
        force: bool,
    },
    /// Propose a commit message (from the prompt and the run's summary);
    /// nothing is written.
    ProposeCommit,
    /// Commit exactly the run's changes on the current branch.
    Commit { message: String },
    /// Commit them on a new branch `ra/<agent>/<short>` instead, leaving the
    /// current branch's working tree as it was before the run.
    Branch { message: String },
}

/// The `checkpoint_result` output event: the daemon's answer to a
/// `checkpoint` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckpointResult {
    /// The diff (or one file's), cut at [`MAX_INLINE_DIFF_BYTES`]; when
    /// `truncated`, the whole diff follows as `file` events
    /// (`changes-<agent>-<time>.diff` and a `.html` rendering).
    Diff {
        /// The files of the run, as in its `changes` event.
        files: Vec<ChangedFile>,
        /// The index shown, when one file was asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<u64>,
        diff: String,
        #[serde(default)]
        truncated: bool,
    },
    /// The files were restored (their paths).
    Undone { restored: Vec<String> },
    /// Nothing was restored: these files changed again after the run.
    UndoRefused { changed_since: Vec<String> },
    /// A proposed commit message.
    CommitProposal { message: String },
    /// The run's changes were committed.
    Committed {
        /// Abbreviated commit id.
        commit: String,
        branch: String,
        files: u64,
    },
    /// The action could not be done; the reason in plain words.
    Failed { message: String },
    /// A result this build does not know.
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_results_round_trip_and_unknown_kinds_are_tolerated() {
        let p = CheckpointPayload {
            session_id: SessionId::parse("s2").unwrap(),
            run: SessionId::parse("s1").unwrap(),
            action: CheckpointAction::Diff { file: Some(2) },
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"sessionId":"s2","run":"s1","action":{"kind":"diff","file":2}}"#
        );
        assert_eq!(serde_json::from_str::<CheckpointPayload>(&json).unwrap(), p);
        let undo: CheckpointAction = serde_json::from_str(r#"{"kind":"undo"}"#).unwrap();
        assert_eq!(undo, CheckpointAction::Undo { force: false });
        let r: CheckpointResult = serde_json::from_str(r#"{"kind":"sparkle","x":1}"#).unwrap();
        assert_eq!(r, CheckpointResult::Unknown);
        let f: ChangedFile =
            serde_json::from_str(r#"{"path":"a","status":"copied","added":1}"#).unwrap();
        assert_eq!(f.status, FileStatus::Other);
        assert_eq!(f.removed, 0);
    }
}
