//! The local copy of every session: `{log_root}/{agentId}/{sessionId}.log`.
//!
//! `remoteagentctl logs` reads these, so a user can see what ran on their
//! machine even when the cloud is unreachable. Files are private to the user
//! (dirs 0700, files 0600), capped in size, and only the newest
//! [`KEEP_PER_AGENT`] are kept per agent.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use remoteagent_proto::events::DonePayload;
use remoteagent_proto::{AgentId, SessionId, text};

/// Largest output kept in one session's log; the Redis stream is complete.
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;
/// Session logs kept per agent.
pub const KEEP_PER_AGENT: usize = 100;

pub fn session_log_path(root: &Path, agent: &AgentId, session: &SessionId) -> PathBuf {
    root.join(agent.as_str())
        .join(format!("{}.log", session.as_str()))
}

/// An agent's sessions with a log, oldest first.
pub fn list_sessions(
    root: &Path,
    agent: &AgentId,
) -> std::io::Result<Vec<(SessionId, SystemTime)>> {
    let dir = root.join(agent.as_str());
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        let Ok(id) = SessionId::parse(stem) else {
            continue;
        };
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        out.push((id, modified));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// How a session's start record begins (the log's first line).
const START_MARK: &str = "# session ";
/// How a session's end record begins (the log's last line).
const DONE_MARK: &str = "# done ";
/// Longest message kept in the end record; the stream has it whole.
const MAX_DONE_MESSAGE_CHARS: usize = 500;
/// Bytes read from the end of a log to find its end record: more than the
/// longest record (its message is capped, 4 bytes a character at most).
const TAIL_BYTES: u64 = 8 * 1024;

/// What a session's log says about how the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEnd {
    /// The log ends with the session's `done` record.
    Finished,
    /// The session started but its `done` was never recorded: the daemon
    /// stopped while it ran (or is running it now).
    Unfinished,
    /// Not a session log this daemon wrote (no start record).
    Unknown,
}

/// Reads the start and the end of the log at `path` (not the whole file,
/// which may hold megabytes of output).
pub fn log_end(path: &Path) -> std::io::Result<LogEnd> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let mut head = [0u8; START_MARK.len()];
    if file.read_exact(&mut head).is_err() || head != START_MARK.as_bytes() {
        return Ok(LogEnd::Unknown);
    }
    let len = file.metadata()?.len();
    let from = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut tail)?;
    let tail = String::from_utf8_lossy(&tail);
    // The end record is the last line, written on a line of its own.
    let body = tail.strip_suffix('\n').unwrap_or(&tail);
    let last = match body.rfind('\n') {
        Some(at) => &body[at + 1..],
        None => return Ok(LogEnd::Unfinished),
    };
    Ok(if is_done_record(last) {
        LogEnd::Finished
    } else {
        LogEnd::Unfinished
    })
}

/// `# done <status> exit <code> in <ms> ms[: message]`, as [`SessionLog::done`]
/// writes it (runner output that merely starts with `# done` is not one).
fn is_done_record(line: &str) -> bool {
    let Some(rest) = line.strip_prefix(DONE_MARK) else {
        return false;
    };
    let words: Vec<&str> = rest.splitn(6, ' ').collect();
    matches!(
        words.as_slice(),
        [status, "exit", code, "in", ms, unit]
            if !status.is_empty()
                && (*code == "-" || code.parse::<i64>().is_ok())
                && ms.parse::<u64>().is_ok()
                && (*unit == "ms" || unit.starts_with("ms: "))
    )
}

/// The log's first line: `# session <id> started <time> runner <runner>
/// prompt: <preview>`. The prompt is remote input and `cat` shows this
/// line, so it is cleaned for a terminal (no escape sequences, controls or
/// bidi/format characters) and kept on one line.
fn start_record(session: &SessionId, runner: &str, prompt: &str) -> String {
    let preview: String = text::for_terminal_line(prompt).chars().take(200).collect();
    let runner = text::for_terminal_line(runner);
    format!(
        "{START_MARK}{session} started {} runner {runner} prompt: {preview}\n",
        rfc3339_now()
    )
}

/// Writer of one session's log. Write errors are logged once and then
/// ignored: a full disk must not stop the session itself.
pub struct SessionLog {
    file: Option<std::fs::File>,
    written: u64,
    truncated: bool,
}

impl SessionLog {
    /// Creates the log (and prunes the agent's oldest logs).
    pub fn create(
        root: &Path,
        agent: &AgentId,
        session: &SessionId,
        runner: &str,
        prompt: &str,
    ) -> SessionLog {
        prune(root, agent);
        let dir = root.join(agent.as_str());
        let opened = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(session_log_path(root, agent, session))
            });
        let file = match opened {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(agent = %agent, session = %session, error = %e, "cannot write the session log");
                None
            }
        };
        let mut log = SessionLog {
            file,
            written: 0,
            truncated: false,
        };
        log.line(&start_record(session, runner, prompt));
        log
    }

    /// Opens an existing log to append to it (to record the end of a
    /// session an earlier daemon process left unfinished). A log that is
    /// gone is not created again: its agent was unpaired or it was pruned.
    pub fn reopen(
        root: &Path,
        agent: &AgentId,
        session: &SessionId,
    ) -> std::io::Result<SessionLog> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(session_log_path(root, agent, session))?;
        Ok(SessionLog {
            file: Some(file),
            written: 0,
            truncated: false,
        })
    }

    /// Appends runner output (up to [`MAX_LOG_BYTES`]).
    pub fn output(&mut self, text: &str) {
        if self.truncated {
            return;
        }
        if self.written + text.len() as u64 > MAX_LOG_BYTES {
            self.truncated = true;
            self.line("\n# … output truncated in the local log (the stream is complete)\n");
            return;
        }
        self.written += text.len() as u64;
        self.line(text);
    }

    /// Appends a daemon line (`# …`), such as a tool approval and its
    /// outcome. Notes are short and kept even past the output cap: they say
    /// what was allowed to run.
    pub fn note(&mut self, text: &str) {
        let one_line: String = text
            .chars()
            .take(500)
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        self.line(&format!("\n# {one_line}\n"));
    }

    /// Appends the end record. It stays one line (the message is cut and
    /// flattened): [`log_end`] recognises a finished session by it.
    pub fn done(&mut self, done: &DonePayload) {
        let code = done
            .exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        let mut footer = format!(
            "\n{DONE_MARK}{} exit {code} in {} ms",
            done.status.as_str(),
            done.duration_ms
        );
        if let Some(m) = &done.message {
            let one_line: String = m
                .chars()
                .take(MAX_DONE_MESSAGE_CHARS)
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                .collect();
            footer.push_str(&format!(": {one_line}"));
        }
        footer.push('\n');
        self.line(&footer);
    }

    fn line(&mut self, text: &str) {
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.write_all(text.as_bytes())
        {
            tracing::warn!(error = %e, "session log write failed; the local log stops here");
            self.file = None;
        }
    }
}

/// Deletes all but the newest `KEEP_PER_AGENT - 1` logs, making room for one.
fn prune(root: &Path, agent: &AgentId) {
    let Ok(sessions) = list_sessions(root, agent) else {
        return;
    };
    if sessions.len() < KEEP_PER_AGENT {
        return;
    }
    let excess = sessions.len() + 1 - KEEP_PER_AGENT;
    for (id, _) in sessions.iter().take(excess) {
        let _ = std::fs::remove_file(session_log_path(root, agent, id));
    }
}

/// The current time in UTC, e.g. `2026-03-04T10:11:12Z`.
pub fn rfc3339_now() -> String {
    // Seconds since the epoch in UTC, formatted without a date crate.
    let secs = remoteagent_proto::now_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::events::DoneStatus;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_516), (2026, 3, 4));
    }

    #[test]
    fn the_end_record_tells_finished_sessions_apart() {
        let root = tempfile::tempdir().unwrap();
        let agent = AgentId::generate();
        let end = |s: &SessionId| log_end(&session_log_path(root.path(), &agent, s)).unwrap();

        let running = SessionId::generate();
        let mut log = SessionLog::create(root.path(), &agent, &running, "sh", "p");
        assert_eq!(end(&running), LogEnd::Unfinished);
        // Output that looks like an end record is still output.
        log.output("# done ok\n# done ok exit 0 in 5 ms and more\n");
        log.output(&"x".repeat(20_000));
        assert_eq!(end(&running), LogEnd::Unfinished);
        log.done(&DonePayload {
            status: DoneStatus::Error,
            exit_code: None,
            duration_ms: 0,
            message: Some(format!("two\nlines {}", "é".repeat(5000))),
            chunks: 0,
            withheld_bytes: 0,
        });
        assert_eq!(end(&running), LogEnd::Finished);

        // Reopened, a log gets the end record appended; a log that is gone
        // is not created again.
        let orphan = SessionId::generate();
        drop(SessionLog::create(root.path(), &agent, &orphan, "sh", "p"));
        let mut log = SessionLog::reopen(root.path(), &agent, &orphan).unwrap();
        log.done(&DonePayload {
            status: DoneStatus::Ok,
            exit_code: Some(0),
            duration_ms: 1,
            message: None,
            chunks: 0,
            withheld_bytes: 0,
        });
        assert_eq!(end(&orphan), LogEnd::Finished);
        let text = std::fs::read_to_string(session_log_path(root.path(), &agent, &orphan)).unwrap();
        assert!(
            text.ends_with("prompt: p\n\n# done ok exit 0 in 1 ms\n"),
            "{text}"
        );
        assert!(SessionLog::reopen(root.path(), &agent, &SessionId::generate()).is_err());

        let other = root.path().join("other.log");
        std::fs::write(&other, "hello\n\n# done ok exit 0 in 1 ms\n").unwrap();
        assert_eq!(log_end(&other).unwrap(), LogEnd::Unknown);
    }

    #[test]
    fn writes_caps_and_prunes() {
        let root = tempfile::tempdir().unwrap();
        let agent = AgentId::generate();
        let s = SessionId::generate();
        let mut log = SessionLog::create(root.path(), &agent, &s, "sh", "do it\nnow");
        log.output("hello\n");
        log.note("approval r1 asked: Bash ls\nrm -rf ~");
        log.done(&DonePayload {
            status: DoneStatus::Ok,
            exit_code: Some(0),
            duration_ms: 5,
            message: None,
            chunks: 1,
            withheld_bytes: 0,
        });
        let text = std::fs::read_to_string(session_log_path(root.path(), &agent, &s)).unwrap();
        assert!(
            text.starts_with(&format!("# session {s} started ")),
            "{text}"
        );
        assert!(
            text.contains(
                "prompt: do it now\nhello\n\n# approval r1 asked: Bash ls rm -rf ~\n\n# done ok exit 0 in 5 ms\n"
            ),
            "{text}"
        );
        let mode = std::fs::metadata(session_log_path(root.path(), &agent, &s))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );

        let big = SessionId::generate();
        let mut log = SessionLog::create(root.path(), &agent, &big, "sh", "p");
        let block = "x".repeat(1024 * 1024);
        for _ in 0..9 {
            log.output(&block);
        }
        let len = std::fs::metadata(session_log_path(root.path(), &agent, &big))
            .unwrap()
            .len();
        assert!(len <= MAX_LOG_BYTES + 4096, "{len}");

        for _ in 0..KEEP_PER_AGENT + 5 {
            SessionLog::create(root.path(), &agent, &SessionId::generate(), "sh", "p");
        }
        assert_eq!(
            list_sessions(root.path(), &agent).unwrap().len(),
            KEEP_PER_AGENT
        );
    }
}
