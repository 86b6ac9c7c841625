//! The `checkpoint` command (a diff card's button, or `remoteagentctl
//! diff|undo|commit`): [`act`] does it, shared by both; [`CheckpointJob`]
//! answers the phone on the output stream of the payload's `session_id`:
//! `started`, `checkpoint_result`, any `file` events (a long diff as
//! `changes-<agent>-<time>.diff` and a coloured `.html`), an undo's own
//! `changes`, then `done`.

use std::path::PathBuf;

use remoteagent_proto::checkpoints::{
    ChangesPayload, CheckpointAction, CheckpointPayload, CheckpointResult, MAX_INLINE_DIFF_BYTES,
};
use remoteagent_proto::events::{DoneStatus, NoticePayload, OutputEvent};
use remoteagent_proto::files::{FileOrigin, FilePayload};
use remoteagent_proto::{AgentId, SessionId, now_ms};
use tokio_util::sync::CancellationToken;

use super::{CheckpointError, UndoOutcome};
use crate::files::BlobStore;
use crate::output::answer::Answer;
use crate::redis_conn::SharedConn;

/// Whose checkpoints, where.
#[derive(Debug, Clone)]
pub struct ActContext {
    pub agent: AgentId,
    pub agent_name: String,
    /// The folder the run worked in (the project, or its worktree).
    pub project: PathBuf,
    /// Where the run's session log is (its prompt and summary).
    pub log_root: PathBuf,
}

/// What an action produced.
#[derive(Debug, Clone)]
pub struct Acted {
    pub result: CheckpointResult,
    /// The whole diff, when the inline one was cut.
    pub full_diff: Option<String>,
    /// An undo's own changes (its card).
    pub changes: Option<ChangesPayload>,
}

impl Acted {
    fn only(result: CheckpointResult) -> Acted {
        Acted {
            result,
            full_diff: None,
            changes: None,
        }
    }
}

/// Does `action` on the checkpoint of the run `run`; `answer` is the id an
/// undo is checkpointed under. Every failure is a `Failed` in words.
pub async fn act(
    ctx: &ActContext,
    run: &SessionId,
    answer: &SessionId,
    action: CheckpointAction,
) -> Acted {
    match try_act(ctx, run, answer, action).await {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(run = %run, error = %e, "a checkpoint action failed");
            Acted::only(CheckpointResult::Failed {
                message: match e {
                    CheckpointError::Refused(m) => m,
                    other => format!("git failed: {other}"),
                },
            })
        }
    }
}

/// [`act`], except that what writes in the folder is refused while a run
/// is going on there.
pub async fn act_unless_busy(
    ctx: &ActContext,
    busy: bool,
    run: &SessionId,
    answer: &SessionId,
    action: CheckpointAction,
) -> Acted {
    let writes = !matches!(
        action,
        CheckpointAction::Diff { .. } | CheckpointAction::ProposeCommit
    );
    if writes && busy {
        return Acted::only(CheckpointResult::Failed {
            message: format!(
                "{} is running a prompt now; try again once that run has ended",
                ctx.agent_name
            ),
        });
    }
    act(ctx, run, answer, action).await
}

async fn try_act(
    ctx: &ActContext,
    run: &SessionId,
    answer: &SessionId,
    action: CheckpointAction,
) -> Result<Acted, CheckpointError> {
    let dir = &ctx.project;
    let writes = !matches!(
        action,
        CheckpointAction::Diff { .. } | CheckpointAction::ProposeCommit
    );
    if writes && ran_in_a_worktree(dir, &ctx.agent, run).await? {
        return Err(CheckpointError::Refused(format!(
            "this run worked in a git worktree of its own, so its changes are on its branch,              not in the project folder: see `remoteagentctl worktrees {}`",
            ctx.agent_name
        )));
    }
    Ok(match action {
        CheckpointAction::Diff { file } => {
            let repo = super::restore::find(dir).await?;
            let (before, after) = super::both_sides(&repo, &ctx.agent, run).await?;
            let changes = super::run_changes(&repo, &before, &after).await?;
            let path = match file {
                Some(i) => Some(changes.get(i as usize).map(|c| c.path.clone()).ok_or_else(
                    || CheckpointError::Refused("the run changed fewer files than that".into()),
                )?),
                None => None,
            };
            let diff = super::diff_text(&repo, &before, &after, path.as_deref()).await?;
            let truncated = diff.len() > MAX_INLINE_DIFF_BYTES;
            let inline = cut(&diff, MAX_INLINE_DIFF_BYTES).to_string();
            Acted {
                result: CheckpointResult::Diff {
                    files: changes
                        .iter()
                        .take(remoteagent_proto::checkpoints::MAX_LISTED_FILES)
                        .map(|c| c.file.clone())
                        .collect(),
                    file,
                    diff: inline,
                    truncated,
                },
                full_diff: truncated.then_some(diff),
                changes: None,
            }
        }
        CheckpointAction::Undo { force } => {
            match super::undo(dir, &ctx.agent, run, answer, force).await? {
                UndoOutcome::Undone { restored, changes } => Acted {
                    result: CheckpointResult::Undone { restored },
                    full_diff: None,
                    changes,
                },
                UndoOutcome::Refused { changed_since } => {
                    Acted::only(CheckpointResult::UndoRefused { changed_since })
                }
            }
        }
        CheckpointAction::ProposeCommit => {
            let repo = super::restore::find(dir).await?;
            super::both_sides(&repo, &ctx.agent, run).await?;
            let (prompt, summary) = run_words(ctx, run).await;
            Acted::only(CheckpointResult::CommitProposal {
                message: super::propose_message(&prompt, summary.as_deref()),
            })
        }
        CheckpointAction::Commit { message } => {
            let c = super::commit(dir, &ctx.agent, run, &message).await?;
            Acted::only(CheckpointResult::Committed {
                commit: c.commit,
                branch: c.branch,
                files: c.files,
            })
        }
        CheckpointAction::Branch { message } => {
            let c = super::branch(dir, &ctx.agent, &ctx.agent_name, run, &message).await?;
            Acted::only(CheckpointResult::Committed {
                commit: c.commit,
                branch: c.branch,
                files: c.files,
            })
        }
    })
}

/// The run's prompt (from its log's start record) and its last words (the
/// log's last lines of output), for a commit message.
async fn run_words(ctx: &ActContext, run: &SessionId) -> (String, Option<String>) {
    let path = crate::session_log::session_log_path(&ctx.log_root, &ctx.agent, run);
    tokio::task::spawn_blocking(move || {
        let prompt = crate::session_log::summary(&path)
            .map(|s| s.prompt)
            .unwrap_or_default();
        let summary = crate::session_log::tail(&path, 12, None, None, false)
            .ok()
            .map(|(lines, _)| {
                lines
                    .into_iter()
                    .map(|l| l.text)
                    .filter(|t| !t.starts_with("# "))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .trim()
                    .to_string()
            })
            .filter(|s| !s.is_empty());
        (prompt, summary)
    })
    .await
    .unwrap_or_default()
}

/// What answering one `checkpoint` command needs.
pub struct CheckpointJob {
    pub conn: SharedConn,
    pub ctx: ActContext,
    pub blobs: BlobStore,
    pub stopping: CancellationToken,
    /// A run is going on in the agent's folder: what writes there waits.
    pub busy: bool,
}

impl CheckpointJob {
    pub async fn run(self, cmd: CheckpointPayload) {
        let sid = cmd.session_id.clone();
        let Some(answer) =
            Answer::start(self.conn.clone(), &self.ctx.agent, &sid, "checkpoint").await
        else {
            return;
        };
        let acted = act_unless_busy(&self.ctx, self.busy, &cmd.run, &sid, cmd.action).await;
        let failed = matches!(acted.result, CheckpointResult::Failed { .. });
        let mut events = vec![OutputEvent::CheckpointResult(acted.result.clone())];
        let mut notes = Vec::new();
        if let Some(diff) = &acted.full_diff {
            let stamp = remoteagent_proto::rfc3339::format(now_ms(), false)
                .replace([':', '-'], "")
                .chars()
                .take(15)
                .collect::<String>();
            let base = format!("changes-{}-{stamp}", self.ctx.agent_name);
            for (name, bytes) in [
                (format!("{base}.diff"), diff.clone().into_bytes()),
                (
                    format!("{base}.html"),
                    super::html::render(diff, &self.ctx.agent_name).into_bytes(),
                ),
            ] {
                match self.blobs.put(&name, &bytes, &self.stopping).await {
                    Ok(file) => events.push(OutputEvent::File(FilePayload {
                        file,
                        origin: FileOrigin::Get,
                    })),
                    Err(e) => {
                        notes.push(format!("the whole diff could not be sent as a file: {e}"))
                    }
                }
            }
        }
        events.extend(
            notes
                .into_iter()
                .map(|text| OutputEvent::Notice(NoticePayload { text })),
        );
        if let Some(changes) = acted.changes {
            events.push(OutputEvent::Changes(changes));
        }
        let status = if failed {
            DoneStatus::Error
        } else {
            DoneStatus::Ok
        };
        answer.end(events, status, None).await;
    }
}

pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether the run `run` worked in a worktree of its own (see
/// [`super::worktree_ref`]).
async fn ran_in_a_worktree(
    dir: &std::path::Path,
    agent: &remoteagent_proto::AgentId,
    run: &SessionId,
) -> Result<bool, CheckpointError> {
    let Some(repo) = super::git::Repo::find(dir).await? else {
        return Ok(false);
    };
    repo.git()
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &super::worktree_ref(agent, run),
        ])
        .succeeds()
        .await
}
