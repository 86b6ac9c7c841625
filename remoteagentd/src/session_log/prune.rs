//! Retention of the session logs: how many are kept per agent and how
//! much all of them may hold together, applied when a session starts.

use std::path::Path;
use std::time::{Duration, SystemTime};

use remoteagent_proto::{AgentId, SessionId};

use super::{LogEnd, LogLimits, list_sessions, log_end, session_log_path};

/// Unfinished logs younger than this are never pruned: they are sessions
/// running now, or orphans the next start still has to end (the orphan
/// sweep's window).
const UNFINISHED_KEPT: Duration = Duration::from_secs(2 * 24 * 3600);

/// Deletes old logs, never `current` (the session starting now): the
/// agent's logs beyond the newest `keep_per_agent`, then, while all agents'
/// logs together exceed `max_total_bytes`, the oldest of them. Unfinished
/// logs of the last two days are kept (running sessions, and orphans the
/// next start ends). Blocking I/O: run it off the session's task.
pub fn prune(root: &Path, agent: &AgentId, current: &SessionId, limits: &LogLimits) {
    let remove = |agent: &AgentId, id: &SessionId| {
        let path = session_log_path(root, agent, id);
        // Its times go with it (an older log has none).
        let _ = std::fs::remove_file(super::times_path(&path));
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(agent = %agent, session = %id, "old session log deleted"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(agent = %agent, session = %id, error = %e, "cannot delete an old session log")
            }
        }
    };
    if let Ok(sessions) = list_sessions(root, agent)
        && sessions.len() > limits.keep_per_agent
    {
        let excess = sessions.len() - limits.keep_per_agent;
        for (id, _) in sessions.iter().filter(|(id, _)| id != current).take(excess) {
            remove(agent, id);
        }
    }

    // Every agent's logs, oldest first.
    let mut all: Vec<(SystemTime, AgentId, SessionId, u64)> = Vec::new();
    let agents = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(_) => return,
    };
    for entry in agents.flatten() {
        let Some(a) = entry
            .file_name()
            .to_str()
            .and_then(|n| AgentId::parse(n).ok())
        else {
            continue;
        };
        for (id, modified) in list_sessions(root, &a).unwrap_or_default() {
            let size = std::fs::metadata(session_log_path(root, &a, &id)).map_or(0, |m| m.len());
            all.push((modified, a.clone(), id, size));
        }
    }
    all.sort_by_key(|x| x.0);
    let mut total: u64 = all.iter().map(|x| x.3).sum();
    let recent = SystemTime::now()
        .checked_sub(UNFINISHED_KEPT)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for (modified, a, id, size) in &all {
        if total <= limits.max_total_bytes {
            break;
        }
        if a == agent && id == current {
            continue;
        }
        let unfinished = matches!(
            log_end(&session_log_path(root, a, id)),
            Ok(LogEnd::Unfinished)
        );
        if unfinished && *modified >= recent {
            continue;
        }
        remove(a, id);
        total = total.saturating_sub(*size);
    }
    if total > limits.max_total_bytes {
        tracing::warn!(
            total,
            limit = limits.max_total_bytes,
            "the session logs stay over their total size: what is left is running or unfinished"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_log::SessionLog;
    use remoteagent_proto::events::{DonePayload, DoneStatus};

    #[test]
    fn pruning_keeps_count_and_total_size_but_not_the_current_or_running() {
        let root = tempfile::tempdir().unwrap();
        let agent = AgentId::generate();
        let path = |a: &AgentId, s: &SessionId| session_log_path(root.path(), a, s);
        let finished = |a: &AgentId, bytes: usize, age_secs: u64| {
            let s = SessionId::generate();
            let mut log = SessionLog::create(root.path(), a, &s, "sh", "p");
            log.output(&"x".repeat(bytes));
            log.done(&DonePayload {
                status: DoneStatus::Ok,
                exit_code: Some(0),
                duration_ms: 5,
                message: None,
                chunks: 1,
                withheld_bytes: 0,
                stopped_by: None,
                turns: None,
                cost_usd: None,
            });
            std::fs::File::options()
                .append(true)
                .open(path(a, &s))
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(age_secs))
                .unwrap();
            s
        };
        let limits = LogLimits {
            max_log_bytes: 1 << 20,
            max_total_bytes: 250_000,
            keep_per_agent: 5,
        };
        // By count: the newest five stay.
        let many: Vec<SessionId> = (0..8).map(|i| finished(&agent, 10, 1000 - i)).collect();
        let current = many[0].clone();
        prune(root.path(), &agent, &current, &limits);
        let left: Vec<SessionId> = list_sessions(root.path(), &agent)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(left.len(), 5);
        assert!(left.contains(&current), "the current log is never deleted");
        for s in &many[4..] {
            assert!(left.contains(s));
        }

        // By total size, over all agents, oldest first; a running session's
        // log (unfinished, recent) stays even when oldest.
        let other = AgentId::generate();
        let running = SessionId::generate();
        let mut log = SessionLog::create(root.path(), &other, &running, "sh", "p");
        log.output(&"r".repeat(100_000));
        std::fs::File::options()
            .append(true)
            .open(path(&other, &running))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(5000))
            .unwrap();
        let old = finished(&other, 100_000, 4000);
        let mid = finished(&agent, 100_000, 3000);
        let new = finished(&other, 100_000, 10);
        prune(root.path(), &agent, &current, &limits);
        assert!(path(&other, &running).exists());
        assert!(!path(&other, &old).exists());
        assert!(!path(&agent, &mid).exists());
        // A deleted log's times go with it; a kept log keeps them.
        assert!(!super::super::times_path(&path(&other, &old)).exists());
        assert!(super::super::times_path(&path(&other, &new)).exists());
        assert!(path(&other, &new).exists());
        assert!(path(&agent, &current).exists());
    }
}
