//! Runs beside the running one, for agents with `worktrees = true`: the
//! worktree a prompt that came while busy runs in (`crate::worktrees`),
//! its fresh conversation, and waiting for such runs to end.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use remoteagent_proto::SessionId;
use remoteagent_proto::events::{CommandPayload, StoppedBy};

use super::RunningSession;
use super::spec::AgentSpec;
use crate::worktrees::WorktreeSettings;
use crate::worktrees::git::{self, Made};

/// Characters of the run's id in its worktree's folder and branch name.
const SHORT: usize = 6;

/// Makes the worktree for the run `sid` (on a blocking thread: git).
pub(super) async fn make_worktree(
    spec: &AgentSpec,
    settings: &WorktreeSettings,
    sid: &SessionId,
) -> Result<Made, String> {
    let project = spec.path.clone();
    let agent_root = settings.agent_root(&spec.id);
    let name = spec.name.clone();
    let short: String = sid
        .as_str()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(SHORT)
        .collect::<String>()
        .to_ascii_lowercase();
    let short = if short.is_empty() {
        "run".into()
    } else {
        short
    };
    let made =
        tokio::task::spawn_blocking(move || git::create(&project, &agent_root, &name, &short))
            .await
            .map_err(|e| format!("the worktree could not be made ({e})"))
            .and_then(|r| r);
    match &made {
        Ok(m) => {
            tracing::info!(session = %sid, branch = %m.branch, dir = %m.dir.display(), "a run goes to a worktree: the agent is busy")
        }
        Err(e) => tracing::info!(session = %sid, reason = %e, "no worktree for a run while busy"),
    }
    made
}

/// The notice before a busy refusal of a worktree agent: why the prompt
/// could not run in a worktree.
pub(super) fn no_worktree_notice(agent_name: &str, why: &str) -> String {
    format!("{agent_name} is set to run prompts in git worktrees while busy, but could not: {why}.")
}

/// A worktree run starts a conversation of its own: two runs at once must
/// never continue one conversation.
pub(super) fn fresh_conversation(cmd: &mut CommandPayload) {
    cmd.r#continue = false;
    cmd.resume = None;
}

/// Resolves with the index of a worktree run that ended; never while none
/// runs.
pub(super) async fn done(runs: &mut [RunningSession]) -> usize {
    if runs.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for (i, run) in runs.iter_mut().enumerate() {
            if Pin::new(&mut run.join).poll(cx).is_ready() {
                return Poll::Ready(i);
            }
        }
        Poll::Pending
    })
    .await
}

/// Stops the worktree runs (`by` says who asked) and waits for their
/// `done`s, at most `wait` each before their writes are given up.
pub(super) async fn abort_all(runs: Vec<RunningSession>, by: StoppedBy, wait: Duration) {
    for run in &runs {
        run.abort.stop(by);
    }
    for run in runs {
        let mut join = run.join;
        if tokio::time::timeout(wait, &mut join).await.is_err() {
            run.give_up.cancel();
            let _ = join.await;
        }
    }
}
