//! An agent's worktrees listed (and cleaned) for `remoteagentctl worktrees`
//! and answered to the bot's `/clean`: the signed `clean_worktrees` command,
//! answered on the output stream of its request id beside any run:
//! `started`, a `notice` saying what was removed and that the branches
//! are kept, then `done`.

use std::path::PathBuf;
use std::time::Duration;

use remoteagent_proto::events::{
    DonePayload, DoneStatus, NoticePayload, OutputEvent, StartedPayload,
};
use remoteagent_proto::worktrees::{AgentWorktrees, CleanWorktreesPayload, cleaned_text};
use remoteagent_proto::{AgentId, names, now_ms};
use tokio_util::sync::CancellationToken;

use super::WorktreeSettings;
use crate::output::OutputWriter;
use crate::redis_conn::SharedConn;

/// Longest wait for the stream to take the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

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
        let key = names::output_stream(&self.agent, &sid);
        let mut out = OutputWriter::new(self.conn.clone(), key, CancellationToken::new());
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
        let (status, text) = match surveyed {
            Ok(s) => {
                let running = s.worktrees.iter().filter(|w| w.running).count();
                tracing::info!(session = %sid, cleaned = s.cleaned.len(), "/clean answered");
                (
                    DoneStatus::Ok,
                    cleaned_text(&s.agent_name, &s.cleaned, running),
                )
            }
            Err(e) => {
                tracing::warn!(session = %sid, error = %e, "/clean failed");
                (
                    DoneStatus::Error,
                    format!("The worktrees of {} could not be cleaned: {e}", self.name),
                )
            }
        };
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            out.event(OutputEvent::Started(StartedPayload {
                session_id: sid.clone(),
                agent_id: self.agent.clone(),
                runner: "/clean".into(),
                started_at_ms: now_ms(),
                mode: None,
            }))
            .await?;
            out.event(OutputEvent::Notice(NoticePayload { text: text.clone() }))
                .await?;
            let message = (status != DoneStatus::Ok).then_some(text);
            out.finish(DonePayload {
                status,
                exit_code: None,
                duration_ms: 0,
                message,
                chunks: 0,
                withheld_bytes: 0,
                stopped_by: None,
                turns: None,
                cost_usd: None,
            })
            .await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!(session = %sid, "could not answer a /clean");
        }
    }
}
