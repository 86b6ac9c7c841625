//! An agent's worktrees listed (and cleaned) for `remoteagentctl worktrees`
//! and answered to the bot's `/clean`: the signed `clean_worktrees` command,
//! answered on the output stream of its request id beside any run:
//! `started`, a `notice` saying what was removed and that the branches
//! are kept, then `done`.

use std::path::PathBuf;

use remoteagent_proto::AgentId;
use remoteagent_proto::events::{DoneStatus, NoticePayload, OutputEvent};
use remoteagent_proto::worktrees::{AgentWorktrees, CleanWorktreesPayload, cleaned_text};

use super::WorktreeSettings;
use crate::output::answer::Answer;
use crate::redis_conn::SharedConn;

/// Lists the worktrees of the agent `agent` (named `name`, project in
/// `path`), first removing the finished ones when `clean`. Blocks (git).
pub fn survey(
    settings: &WorktreeSettings,
    agent: &AgentId,
    name: &str,
    path: &std::path::Path,
    clean: bool,
) -> Result<AgentWorktrees, String> {
    let agent_root = settings.agent_root(agent);
    let enabled = settings.enabled_for(path);
    // A project that is no git repository has none.
    let listed = if super::git::unusable(path).is_some() {
        Vec::new()
    } else {
        super::git::list(path, &agent_root, &settings.running)?
    };
    let cleaned = if clean {
        super::git::clean(path, &listed)
    } else {
        Vec::new()
    };
    let worktrees = if clean {
        super::git::list(path, &agent_root, &settings.running).unwrap_or_default()
    } else {
        listed
    };
    Ok(AgentWorktrees {
        agent_name: name.to_string(),
        path: path.to_string_lossy().into_owned(),
        enabled,
        worktrees,
        cleaned,
    })
}

/// What answering one `/clean` needs.
pub struct CleanJob {
    pub conn: SharedConn,
    pub agent: AgentId,
    pub name: String,
    pub path: PathBuf,
    pub settings: WorktreeSettings,
}

impl CleanJob {
    pub async fn run(self, request: CleanWorktreesPayload) {
        let sid = request.session_id;
        let Some(answer) = Answer::start(self.conn.clone(), &self.agent, &sid, "/clean").await
        else {
            return;
        };
        let (settings, agent, name, path) = (
            self.settings.clone(),
            self.agent.clone(),
            self.name.clone(),
            self.path.clone(),
        );
        let surveyed =
            tokio::task::spawn_blocking(move || survey(&settings, &agent, &name, &path, true))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
        match surveyed {
            Ok(s) => {
                let running = s.worktrees.iter().filter(|w| w.running).count();
                tracing::info!(session = %sid, cleaned = s.cleaned.len(), "/clean answered");
                let text = cleaned_text(&s.agent_name, &s.cleaned, running);
                let notice = OutputEvent::Notice(NoticePayload { text });
                answer.end(vec![notice], DoneStatus::Ok, None).await;
            }
            Err(e) => {
                tracing::warn!(session = %sid, error = %e, "/clean failed");
                answer
                    .fail(
                        DoneStatus::Error,
                        format!("The worktrees of {} could not be cleaned: {e}", self.name),
                    )
                    .await;
            }
        }
    }
}
