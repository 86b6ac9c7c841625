//! The sessions (conversations with the AI: Claude's `session_id`, Codex's
//! `thread_id`) each agent's runs took part in, newest first, for
//! `remoteagentctl sessions` and the bot's `/sessions`.
//!
//! One JSON file per agent in `$XDG_STATE_HOME/remoteagent/conversations/
//! {agentId}.json` (never in the project folder), mode 0600 in a 0700
//! folder, written to `{file}.partial` and renamed, so a crash leaves the
//! old list or the new one. At most [`MAX_SESSIONS`] are kept: the session
//! used longest ago goes first. The agent's metadata keeps only the last
//! id (`state.rs`), which older daemons wrote and still read.

pub mod answer;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use remoteagent_proto::AgentId;
use remoteagent_proto::events::{CommandPayload, Usd};
use remoteagent_proto::sessions::{MAX_SESSIONS, SessionSummary, first_prompt};
use serde::{Deserialize, Serialize};

use crate::paths::{PathsError, ensure_private_dir};
use crate::runner::Resume;
use crate::runner::text::{RunStats, valid_conversation_id};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Dir(#[from] PathsError),
    #[error("{action} {path}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{path} is not a list of sessions: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    sessions: Vec<SessionSummary>,
}

/// One finished run, as it adds to its session.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// The conversation id the runner reported.
    pub conversation: &'a str,
    /// The runner's display name.
    pub runner: &'a str,
    pub prompt: &'a str,
    /// When the run started (ms since the epoch).
    pub started_at_ms: u64,
    pub stats: RunStats,
}

/// Where the agents' session lists live.
#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
}

impl History {
    pub fn new(dir: PathBuf) -> Self {
        History { dir }
    }

    pub fn file(&self, agent: &AgentId) -> PathBuf {
        self.dir.join(format!("{agent}.json"))
    }

    /// The agent's sessions, newest first; none when it has no file yet.
    /// Entries whose id could not be passed to a runner are left out (the
    /// file is the user's to edit).
    pub fn load(&self, agent: &AgentId) -> Result<Vec<SessionSummary>, HistoryError> {
        let path = self.file(agent);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(HistoryError::Io {
                    path,
                    action: "reading",
                    source,
                });
            }
        };
        let file: File = serde_json::from_slice(&bytes)
            .map_err(|source| HistoryError::Corrupt { path, source })?;
        let mut sessions: Vec<_> = file
            .sessions
            .into_iter()
            .filter(|s| valid_conversation_id(&s.id))
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_at_ms));
        sessions.truncate(MAX_SESSIONS);
        Ok(sessions)
    }

    /// Adds a run to its session (a new one at the top, a known one moved
    /// there) and keeps the newest [`MAX_SESSIONS`]. A file that cannot be
    /// read is replaced rather than blocking every later run from being
    /// kept; the caller logs the error of a write.
    pub fn record(&self, agent: &AgentId, run: Run<'_>) -> Result<(), HistoryError> {
        if !valid_conversation_id(run.conversation) {
            return Ok(());
        }
        let mut sessions = match self.load(agent) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the list of sessions is unreadable; starting it again");
                Vec::new()
            }
        };
        let at = run.started_at_ms;
        let mut session = match sessions.iter().position(|s| s.id == run.conversation) {
            Some(i) => sessions.remove(i),
            None => SessionSummary {
                id: run.conversation.to_string(),
                runner: run.runner.to_string(),
                first_prompt: first_prompt(run.prompt),
                first_at_ms: at,
                last_at_ms: at,
                runs: 0,
                turns: None,
                cost_usd: None,
            },
        };
        session.last_at_ms = session.last_at_ms.max(at);
        session.runs += 1;
        session.turns = add(session.turns, run.stats.turns, |a, b| Some(a + b));
        session.cost_usd = add(session.cost_usd, run.stats.cost_usd, |a, b| {
            Usd::from_dollars(a.dollars() + b.dollars())
        });
        sessions.insert(0, session);
        sessions.truncate(MAX_SESSIONS);
        self.save(agent, &File { sessions })
    }

    fn save(&self, agent: &AgentId, file: &File) -> Result<(), HistoryError> {
        ensure_private_dir(&self.dir)?;
        let path = self.file(agent);
        let partial = self.dir.join(format!("{agent}.json.partial"));
        let json = serde_json::to_vec_pretty(file).map_err(|source| HistoryError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let io = |path: &Path, action| {
            let path = path.to_path_buf();
            move |source| HistoryError::Io {
                path,
                action,
                source,
            }
        };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(io(&partial, "creating"))?;
        out.write_all(&json)
            .and_then(|()| out.sync_all())
            .map_err(io(&partial, "writing"))?;
        std::fs::rename(&partial, &path).map_err(io(&path, "renaming into"))?;
        Ok(())
    }

    /// Forgets an agent's sessions (unpair); a missing file is no error.
    pub fn remove(&self, agent: &AgentId) -> Result<(), HistoryError> {
        let path = self.file(agent);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(HistoryError::Io {
                path,
                action: "removing",
                source,
            }),
        }
    }
}

/// Which conversation a command's run belongs to: the session it names
/// (`resume`, chosen with the bot's Resume button) wins; otherwise the
/// agent's last one when it continues (`stored`), a new one after `/new`.
pub fn resume_for<'a>(command: &'a CommandPayload, stored: Option<&'a str>) -> Resume<'a> {
    match command.resume.as_deref() {
        Some(id) if valid_conversation_id(id) => Resume::Id(id),
        _ => Resume::choose(command.r#continue, stored),
    }
}

/// Why a command naming a session to continue is refused: an id that could
/// not be passed to a runner as one plain argument.
pub fn resume_refusal(command: &CommandPayload) -> Option<String> {
    match command.resume.as_deref() {
        Some(id) if !valid_conversation_id(id) => Some(
            "the session to continue is not one a runner could resume (a malformed id); nothing ran"
                .into(),
        ),
        _ => None,
    }
}

/// A sum of what is known: unknown plus a number is that number.
fn add<T: Copy>(a: Option<T>, b: Option<T>, sum: impl Fn(T, T) -> Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => sum(a, b).or(Some(a)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn run(conversation: &str, at: u64) -> Run<'_> {
        Run {
            conversation,
            runner: "claude",
            prompt: "fix the\ntests",
            started_at_ms: at,
            stats: RunStats {
                turns: Some(2),
                cost_usd: Usd::from_dollars(0.25),
            },
        }
    }

    #[test]
    fn runs_add_up_in_their_session_and_the_newest_come_first() {
        let tmp = tempfile::tempdir().unwrap();
        let history = History::new(tmp.path().join("conversations"));
        let agent = AgentId::generate();
        assert!(history.load(&agent).unwrap().is_empty());
        history.record(&agent, run("aaa", 10)).unwrap();
        history.record(&agent, run("bbb", 20)).unwrap();
        history
            .record(
                &agent,
                Run {
                    prompt: "a later prompt",
                    stats: RunStats::default(),
                    ..run("aaa", 30)
                },
            )
            .unwrap();
        let sessions = history.load(&agent).unwrap();
        let ids: Vec<_> = sessions.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["aaa", "bbb"]);
        let aaa = &sessions[0];
        assert_eq!(aaa.first_prompt, "fix the tests");
        assert_eq!((aaa.first_at_ms, aaa.last_at_ms, aaa.runs), (10, 30, 2));
        assert_eq!(aaa.turns, Some(2));
        assert_eq!(aaa.cost_usd, Usd::from_dollars(0.25));
        let file = history.file(&agent);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(file.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        history.remove(&agent).unwrap();
        history.remove(&agent).unwrap();
        assert!(history.load(&agent).unwrap().is_empty());
    }

    #[test]
    fn the_list_is_bounded_and_the_oldest_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let history = History::new(tmp.path().to_path_buf());
        let agent = AgentId::generate();
        let ids: Vec<String> = (0..MAX_SESSIONS + 5).map(|i| format!("c{i:02}")).collect();
        for (i, id) in ids.iter().enumerate() {
            history.record(&agent, run(id, i as u64)).unwrap();
        }
        let sessions = history.load(&agent).unwrap();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions[0].id, format!("c{:02}", MAX_SESSIONS + 4));
        assert!(!sessions.iter().any(|s| s.id == "c04"), "{sessions:?}");
        assert!(sessions.iter().any(|s| s.id == "c05"), "{sessions:?}");
        // Using an old session again brings it back to the top.
        history.record(&agent, run("c05", 100)).unwrap();
        assert_eq!(history.load(&agent).unwrap()[0].id, "c05");
        // The file holds no more than the bound either.
        let text = std::fs::read_to_string(history.file(&agent)).unwrap();
        assert_eq!(text.matches("\"id\"").count(), MAX_SESSIONS);
    }

    #[test]
    fn the_session_named_by_the_command_wins_over_continue() {
        let mut cmd = CommandPayload {
            session_id: remoteagent_proto::SessionId::generate(),
            prompt: "go".into(),
            r#continue: false,
            attachments: Vec::new(),
            resume: Some("older-1".into()),
            mode: None,
        };
        assert_eq!(resume_for(&cmd, Some("last")), Resume::Id("older-1"));
        assert_eq!(resume_refusal(&cmd), None);
        cmd.resume = None;
        assert_eq!(resume_for(&cmd, Some("last")), Resume::Fresh);
        cmd.r#continue = true;
        assert_eq!(resume_for(&cmd, Some("last")), Resume::Id("last"));
        cmd.resume = Some("--output=/etc/x".into());
        assert_eq!(resume_for(&cmd, Some("last")), Resume::Id("last"));
        assert!(resume_refusal(&cmd).unwrap().contains("nothing ran"));
    }

    #[test]
    fn bad_ids_are_neither_kept_nor_listed_and_a_broken_file_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let history = History::new(tmp.path().to_path_buf());
        let agent = AgentId::generate();
        history.record(&agent, run("--evil", 1)).unwrap();
        assert!(!history.file(&agent).exists());
        // An edited file with an id that would be an option is read without it.
        std::fs::write(
            history.file(&agent),
            r#"{"sessions":[{"id":"--x","runner":"claude","firstAtMs":1,"lastAtMs":1},
               {"id":"ok1","runner":"codex","firstAtMs":1,"lastAtMs":2,"future":1}]}"#,
        )
        .unwrap();
        let listed = history.load(&agent).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id.as_str(), listed[0].runs), ("ok1", 0));
        std::fs::write(history.file(&agent), "{").unwrap();
        assert!(matches!(
            history.load(&agent),
            Err(HistoryError::Corrupt { .. })
        ));
        history.record(&agent, run("new1", 5)).unwrap();
        assert_eq!(history.load(&agent).unwrap()[0].id, "new1");
    }
}
