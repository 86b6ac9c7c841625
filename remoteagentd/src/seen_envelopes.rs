//! The record of command envelopes already acted on, kept on disk so that
//! an envelope is accepted at most once across daemon restarts, crashes and
//! agent restarts (a token renewal restarts the agent's task).
//!
//! One file per agent, `{dir}/{agentId}.seen` (dir 0700, file 0600), one
//! line per envelope: `{exp} {jti}`. An id is written (and synced) *before*
//! the envelope is acted on; when it cannot be written the envelope is
//! refused. Entries are kept until their envelope could no longer pass the
//! expiry check (at most [`envelope::MAX_LIFETIME_SECS`] plus the clock
//! leeway), then dropped when the file is rewritten: at load, and whenever
//! appended lines far outnumber the live ones (write to a temp file, then
//! rename, so a crash leaves the old or the new file, never half of one).
//!
//! The in-memory [`ReplayGuard`] of each agent is shared by every task of
//! that agent in this process ([`SeenEnvelopes::for_agent`]): during a
//! restart the old and the new task are both subscribed for a moment and
//! both receive the same message; exactly one of them accepts it.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use remoteagent_proto::AgentId;
use remoteagent_proto::envelope::{EnvelopeClaims, ReplayGuard};

use crate::paths::ensure_private_dir;

/// Longest `jti` accepted; the cloud's are 32 hex digits.
const MAX_JTI_CHARS: usize = 128;
/// Lines in the file before expired ones are looked for and, when they
/// outnumber the live ones, dropped by a rewrite.
const COMPACT_SLACK: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SeenError {
    #[error("replayed (jti seen before)")]
    Replayed,
    #[error("unusable jti")]
    BadJti,
    #[error("cannot record the envelope as seen: {0}")]
    Unrecordable(String),
}

/// Every agent's record in this process, by agent id.
#[derive(Debug)]
pub struct SeenEnvelopes {
    dir: PathBuf,
    agents: Mutex<HashMap<AgentId, Arc<Mutex<AgentRecord>>>>,
}

impl SeenEnvelopes {
    pub fn new(dir: PathBuf) -> Self {
        SeenEnvelopes {
            dir,
            agents: Mutex::new(HashMap::new()),
        }
    }

    /// The agent's record, loaded from disk the first time it is asked for.
    pub fn for_agent(&self, agent: &AgentId) -> Arc<Mutex<AgentRecord>> {
        let mut agents = match self.agents.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        agents
            .entry(agent.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(AgentRecord::load(
                    self.file(agent),
                    remoteagent_proto::now_secs(),
                )))
            })
            .clone()
    }

    /// Drops an unpaired agent's record (file included).
    pub fn forget(&self, agent: &AgentId) {
        if let Ok(mut agents) = self.agents.lock() {
            agents.remove(agent);
        }
        let path = self.file(agent);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(agent = %agent, path = %path.display(), error = %e, "could not delete the record of seen envelopes");
        }
    }

    pub fn file(&self, agent: &AgentId) -> PathBuf {
        self.dir.join(format!("{}.seen", agent.as_str()))
    }
}

/// One agent's seen envelopes: the guard and its file.
#[derive(Debug)]
pub struct AgentRecord {
    path: PathBuf,
    guard: ReplayGuard,
    /// Where new ids are appended; `None` until the file could be read and
    /// opened (then every envelope is refused and loading is tried again).
    file: Option<std::fs::File>,
    /// Lines in the file.
    lines: usize,
}

impl AgentRecord {
    /// Reads the file (a missing one is empty), keeps the live entries and
    /// rewrites it with only those. Problems are logged; the record then
    /// refuses envelopes until a later attempt works.
    pub fn load(path: PathBuf, now: u64) -> AgentRecord {
        let mut record = AgentRecord {
            path,
            guard: ReplayGuard::new(),
            file: None,
            lines: 0,
        };
        if let Err(e) = record.reload(now) {
            tracing::error!(path = %record.path.display(), error = %e, "cannot load the record of seen envelopes; commands are refused until it can be written");
        }
        record
    }

    fn reload(&mut self, now: u64) -> std::io::Result<()> {
        self.file = None;
        let mut guard = ReplayGuard::new();
        match std::fs::File::open(&self.path) {
            Ok(file) => {
                for line in std::io::BufReader::new(file).lines() {
                    let line = line?;
                    // A line torn by a crash mid-write is skipped: its
                    // envelope was refused (not synced, not acted on).
                    let Some((exp, jti)) = line.split_once(' ') else {
                        continue;
                    };
                    let Ok(exp) = exp.parse::<u64>() else {
                        continue;
                    };
                    if valid_jti(jti) && ReplayGuard::still_valid(exp, now) {
                        guard.remember(jti.to_string(), exp);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.guard = guard;
        self.rewrite()
    }

    /// Writes the live entries to a new file and opens it for appending.
    fn rewrite(&mut self) -> std::io::Result<()> {
        self.file = None;
        let dir = self.path.parent().unwrap_or_else(|| Path::new("."));
        ensure_private_dir(dir).map_err(std::io::Error::other)?;
        let partial = self.path.with_extension("seen.partial");
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        let mut text = String::new();
        let mut lines = 0;
        for (jti, exp) in self.guard.entries() {
            text.push_str(&format!("{exp} {jti}\n"));
            lines += 1;
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        drop(out);
        std::fs::rename(&partial, &self.path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            // Make the rename itself durable; best effort (not all
            // filesystems allow syncing a directory).
            let _ = d.sync_all();
        }
        self.file = Some(
            std::fs::OpenOptions::new()
                .append(true)
                .mode(0o600)
                .open(&self.path)?,
        );
        self.lines = lines;
        Ok(())
    }

    /// Records the envelope's `jti` before it is acted on. `Err` means:
    /// do not act on it.
    pub fn record(&mut self, claims: &EnvelopeClaims, now: u64) -> Result<(), SeenError> {
        if !valid_jti(&claims.jti) {
            return Err(SeenError::BadJti);
        }
        if self.file.is_none() {
            self.reload(now)
                .map_err(|e| SeenError::Unrecordable(e.to_string()))?;
        }
        if self.guard.contains(&claims.jti) {
            return Err(SeenError::Replayed);
        }
        let line = format!("{} {}\n", claims.exp, claims.jti);
        let written = match self.file.as_mut() {
            Some(f) => f.write_all(line.as_bytes()).and_then(|()| f.sync_data()),
            None => Err(std::io::Error::other("the file is not open")),
        };
        if let Err(e) = written {
            // Reopened (and the file rewritten) at the next envelope.
            self.file = None;
            return Err(SeenError::Unrecordable(e.to_string()));
        }
        self.lines += 1;
        // Full guard: refused rather than forgotten (see `ReplayGuard`).
        self.guard
            .check(claims, now)
            .map_err(|_| SeenError::Replayed)?;
        if self.lines > COMPACT_SLACK {
            self.guard.prune(now);
            if self.lines > 2 * self.guard.len() + COMPACT_SLACK / 2
                && let Err(e) = self.rewrite()
            {
                // The entry is on disk already; the next envelope retries.
                tracing::warn!(path = %self.path.display(), error = %e, "cannot compact the record of seen envelopes");
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.guard.len()
    }

    pub fn is_empty(&self) -> bool {
        self.guard.is_empty()
    }
}

/// Ids are written as one word on a line: nothing else is accepted.
fn valid_jti(jti: &str) -> bool {
    !jti.is_empty() && jti.len() <= MAX_JTI_CHARS && jti.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::SessionId;
    use remoteagent_proto::events::{AbortPayload, CommandEvent};

    fn claims(jti: &str, exp: u64) -> EnvelopeClaims {
        EnvelopeClaims {
            aud: "a".into(),
            iat: exp.saturating_sub(30),
            exp,
            jti: jti.into(),
            command: CommandEvent::Abort(AbortPayload {
                session_id: SessionId::parse("s1").unwrap(),
            }),
        }
    }

    #[test]
    fn seen_ids_survive_a_reload_until_they_expire() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SeenEnvelopes::new(tmp.path().join("seen"));
        let agent = AgentId::generate();
        let now = 1_000_000;
        {
            let rec = store.for_agent(&agent);
            let mut rec = rec.lock().unwrap();
            rec.record(&claims("j1", now + 60), now).unwrap();
            rec.record(&claims("old", now + 1), now).unwrap();
            assert!(matches!(
                rec.record(&claims("j1", now + 60), now),
                Err(SeenError::Replayed)
            ));
            assert!(matches!(
                rec.record(&claims("a b", now + 60), now),
                Err(SeenError::BadJti)
            ));
        }
        let path = store.file(&agent);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        // A torn last line (a crash mid-write) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"12")
            .unwrap();

        // A new process, 30 s later: j1 is still refused, the expired one
        // is gone from memory and from the file.
        let mut rec = AgentRecord::load(path.clone(), now + 30);
        assert_eq!(rec.len(), 1);
        assert!(matches!(
            rec.record(&claims("j1", now + 60), now + 30),
            Err(SeenError::Replayed)
        ));
        rec.record(&claims("j2", now + 90), now + 30).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{} j1\n{} j2\n", now + 60, now + 90));
    }

    #[test]
    fn an_unwritable_record_refuses_envelopes() {
        let tmp = tempfile::tempdir().unwrap();
        // The record's directory is a file: nothing can be written.
        let blocked = tmp.path().join("blocked");
        std::fs::write(&blocked, "").unwrap();
        let mut rec = AgentRecord::load(blocked.join("a.seen"), 100);
        assert!(matches!(
            rec.record(&claims("j1", 160), 100),
            Err(SeenError::Unrecordable(_))
        ));
        // Once writable, envelopes are taken again.
        std::fs::remove_file(&blocked).unwrap();
        rec.record(&claims("j1", 160), 100).unwrap();
    }

    #[test]
    fn the_file_is_compacted_when_it_grows() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.seen");
        let mut rec = AgentRecord::load(path.clone(), 0);
        for i in 0..(COMPACT_SLACK as u64 + 10) {
            // Each one expires before the next arrives.
            rec.record(&claims(&format!("j{i}"), i * 100 + 60), i * 100)
                .unwrap();
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < COMPACT_SLACK, "{lines}");
    }
}
