//! A run's checkpoint: `before` just before the runner is spawned, `after`
//! and the `changes` event just before `done`. A checkpoint that fails
//! never stops the run: the run goes on and a notice says in words that
//! no checkpoint was taken, and why.

use std::path::PathBuf;

use remoteagent_proto::checkpoints::ChangesPayload;
use remoteagent_proto::{AgentId, SessionId};

use super::{
    Repo, Retention, Side, changes_payload, not_a_repo_notice, prune, run_changes, snapshot,
};

/// What a run's start recorded.
#[derive(Debug)]
pub struct RunCheckpoint {
    dir: PathBuf,
    agent: AgentId,
    session: SessionId,
    /// The `before` commit, or why there is none (a notice, or nothing to
    /// say: a project told once already that it is not a git repository).
    before: Result<String, Option<String>>,
    /// The branch of the worktree the run works in (`worktrees = true`).
    pub worktree_branch: Option<String>,
}

/// What the end of a run tells the stream.
#[derive(Debug, Default)]
pub struct RunEnd {
    pub notices: Vec<String>,
    pub changes: Option<ChangesPayload>,
}

impl RunCheckpoint {
    /// Records `before` for the run `session` in the folder `dir`.
    pub async fn before(dir: PathBuf, agent: AgentId, session: SessionId) -> RunCheckpoint {
        let before = match snapshot(&dir, &agent, &session, Side::Before).await {
            Ok(Some(commit)) => Ok(commit),
            // Said in the run's log and the daemon's, not on the stream:
            // a notice there would be a line in every first run's message of
            // every project outside git (and in the exact texts tests
            // expect); see the report of issue 18.
            Ok(None) => {
                if let Some(text) = not_a_repo_notice(&agent) {
                    tracing::info!("{text}");
                }
                Err(None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint before the run");
                Err(Some(format!(
                    "no checkpoint was taken before this run, so it cannot be undone from here: {e}"
                )))
            }
        };
        RunCheckpoint {
            dir,
            agent,
            session,
            before,
            worktree_branch: None,
        }
    }

    /// Records `after`; the `changes` when files changed, the notices
    /// otherwise due.
    pub async fn after(self) -> RunEnd {
        let before = match self.before {
            Ok(b) => b,
            Err(notice) => {
                return RunEnd {
                    notices: notice.into_iter().collect(),
                    changes: None,
                };
            }
        };
        let taken = async {
            let after = snapshot(&self.dir, &self.agent, &self.session, Side::After)
                .await?
                .ok_or_else(|| {
                    super::CheckpointError::Refused(
                        "the project is no longer a git repository".into(),
                    )
                })?;
            let repo = Repo::find(&self.dir).await?.ok_or_else(|| {
                super::CheckpointError::Refused("the project is no longer a git repository".into())
            })?;
            if self.worktree_branch.is_some() {
                super::snapshot::set_ref(
                    &repo,
                    &super::worktree_ref(&self.agent, &self.session),
                    &after,
                )
                .await?;
            }
            run_changes(&repo, &before, &after).await
        };
        let end = match taken.await {
            Ok(changes) => RunEnd {
                notices: Vec::new(),
                changes: changes_payload(&changes, self.worktree_branch.clone()),
            },
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint after the run");
                RunEnd {
                    notices: vec![format!(
                        "no checkpoint was taken after this run, so its changes cannot be shown or undone from here: {e}"
                    )],
                    changes: None,
                }
            }
        };
        // Old checkpoints go in the background: the run's end never waits.
        let (dir, agent) = (self.dir, self.agent);
        tokio::spawn(async move {
            match prune(&dir, &agent, Retention::default()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "old checkpoints pruned"),
                Err(e) => tracing::warn!(error = %e, "old checkpoints could not be pruned"),
            }
        });
        end
    }
}
