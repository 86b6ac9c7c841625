//! Which logs a `logs` request is about: its agents (one by name or id
//! prefix, or all), a session by id or unique id prefix, the sessions with
//! lines since a time, and each session's summary for headers and `--list`.

use std::path::PathBuf;

use remoteagent_proto::control::{AgentInfo, ErrorCode, LogSessionInfo};
use remoteagent_proto::{AgentId, SessionId};

use super::super::ControlError;
use crate::session_log::{self, session_log_path};
use crate::supervisor::Supervisor;

/// One session's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRef {
    pub agent: AgentId,
    pub session: SessionId,
    pub path: PathBuf,
}

/// The agents a request covers.
pub struct Scope<'a> {
    supervisor: &'a Supervisor,
    /// The agent named in the request; `None`: every agent.
    pub only: Option<AgentId>,
}

impl<'a> Scope<'a> {
    pub fn new(supervisor: &'a Supervisor, agent: Option<&str>) -> Result<Self, ControlError> {
        let only = agent.map(|q| supervisor.resolve(q)).transpose()?;
        Ok(Scope { supervisor, only })
    }

    /// The agents covered now (all agents: also those paired since).
    pub fn agents(&self) -> Vec<AgentInfo> {
        let all = self.supervisor.list();
        match &self.only {
            Some(id) => all.into_iter().filter(|a| &a.id == id).collect(),
            None => all,
        }
    }

    pub fn covers(&self, agent: &AgentId) -> bool {
        self.only.as_ref().is_none_or(|id| id == agent)
    }

    pub fn log(&self, agent: &AgentId, session: &SessionId) -> LogRef {
        LogRef {
            agent: agent.clone(),
            session: session.clone(),
            path: session_log_path(&self.supervisor.settings().log_root, agent, session),
        }
    }

    /// Every session log of the covered agents (unordered).
    fn all_logs(&self) -> Vec<LogRef> {
        let root = &self.supervisor.settings().log_root;
        self.agents()
            .iter()
            .flat_map(|a| {
                session_log::list_sessions(root, &a.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(s, _)| self.log(&a.id, &s))
            })
            .collect()
    }

    /// The session whose id is `query` or, failing that, starts with it.
    pub fn resolve_session(&self, query: &str) -> Result<LogRef, ControlError> {
        let query = query.trim();
        let all = self.all_logs();
        if let Some(exact) = all.iter().find(|l| l.session.as_str() == query) {
            return Ok(exact.clone());
        }
        let mut candidates: Vec<LogRef> = if query.is_empty() {
            Vec::new()
        } else {
            all.into_iter()
                .filter(|l| l.session.as_str().starts_with(query))
                .collect()
        };
        match candidates.len() {
            1 => Ok(candidates.remove(0)),
            0 => Err(ControlError::new(
                ErrorCode::NotFound,
                format!("no run '{query}' (see `remoteagentctl logs --list`)"),
            )),
            _ => {
                let mut names: Vec<String> = candidates
                    .iter()
                    .map(|l| format!("{} of {}", l.session, self.name(&l.agent)))
                    .collect();
                names.sort();
                Err(ControlError::new(
                    ErrorCode::Ambiguous,
                    format!(
                        "'{query}' matches several runs: {}; use a longer id prefix",
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    pub fn log_events(&self) -> crate::session_log::LogEvents {
        // A clone shares the one channel: reloads keep it (`reload::agent_settings`).
        self.supervisor.settings().log_events.clone()
    }

    pub fn name(&self, agent: &AgentId) -> String {
        self.supervisor
            .agent_info(agent)
            .map(|a| a.name)
            .unwrap_or_else(|| agent.to_string())
    }

    /// What the log's records say, and whether the agent runs it now.
    pub fn info(&self, log: &LogRef) -> LogSessionInfo {
        let summary = session_log::summary(&log.path).unwrap_or_default();
        let running = self
            .supervisor
            .agent_info(&log.agent)
            .is_some_and(|a| a.running_session.as_ref() == Some(&log.session));
        let (outcome, duration_ms) = match summary.end {
            Some((status, ms)) => (Some(status), Some(ms)),
            None => (None, None),
        };
        LogSessionInfo {
            agent_id: log.agent.clone(),
            agent_name: self.name(&log.agent),
            session_id: log.session.clone(),
            started_at_ms: summary.started_ms,
            prompt: summary.prompt,
            runner: summary.runner,
            running,
            outcome,
            duration_ms,
            last_write_ms: summary.modified_ms,
        }
    }

    /// The covered sessions written to at or after `since_ms`, oldest
    /// start first (a log without a start record by its last write).
    pub fn sessions(&self, since_ms: Option<u64>) -> Vec<(LogRef, LogSessionInfo)> {
        let mut out: Vec<(LogRef, LogSessionInfo)> = self
            .all_logs()
            .into_iter()
            .map(|l| {
                let info = self.info(&l);
                (l, info)
            })
            .filter(|(_, i)| since_ms.is_none_or(|since| i.last_write_ms >= since))
            .collect();
        out.sort_by_key(|(_, i)| {
            (
                i.started_at_ms.unwrap_or(i.last_write_ms),
                i.session_id.clone(),
            )
        });
        out
    }

    /// The covered session written to last.
    pub fn newest(&self) -> Option<LogRef> {
        let root = &self.supervisor.settings().log_root;
        self.agents()
            .iter()
            .filter_map(|a| {
                session_log::list_sessions(root, &a.id)
                    .ok()?
                    .pop()
                    .map(|(s, t)| (a.id.clone(), s, t))
            })
            .max_by_key(|(_, _, t)| *t)
            .map(|(a, s, _)| self.log(&a, &s))
    }
}
