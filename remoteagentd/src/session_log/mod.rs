//! The local copy of every session: `{log_root}/{agentId}/{sessionId}.log`.
//!
//! `remoteagentctl logs` reads these, so a user can see what ran on their
//! machine even when the cloud is unreachable. Files are private to the user
//! (dirs 0700, files 0600). A log keeps the whole output, also what the
//! stream's byte budget kept from the cloud, up to [`LogLimits::max_log_bytes`]
//! (saying so in the log and the stream when that is reached); only the
//! newest [`LogLimits::keep_per_agent`] are kept per agent, and the oldest go
//! while all logs together are over [`LogLimits::max_total_bytes`]
//! ([`prune`](prune()), when a session starts; `prune.rs`).
//!
//! Beside each log, `{sessionId}.times` records when its parts were written
//! (`times.rs`); `read.rs` reads logs back with those times, and
//! `events.rs` announces every write to followers (`logs -f`).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use remoteagent_proto::events::DonePayload;
use remoteagent_proto::{AgentId, SessionId, text};

use crate::runner::process::RunnerRecord;
use crate::util::time::rfc3339_now;

mod events;
mod prune;
mod read;
mod times;

pub use events::{LogEvent, LogEventKind, LogEvents};
pub use prune::prune;
pub use read::{Cursor, Summary, TimedLine, done_record, summary, tail};
pub use times::times_path;

/// Largest output kept in one session's log, unless configured.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest size of all session logs together, unless configured.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Session logs kept per agent.
pub const KEEP_PER_AGENT: usize = 100;
/// How much the local logs may hold (`[logs]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Output kept per session log; past it, the log says it stops.
    pub max_log_bytes: u64,
    /// All logs together; the oldest are deleted at session start to stay
    /// under it.
    pub max_total_bytes: u64,
    pub keep_per_agent: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            keep_per_agent: KEEP_PER_AGENT,
        }
    }
}

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
    agent: AgentId,
    session: SessionId,
    file: Option<std::fs::File>,
    /// The file's length: where the next write lands.
    pos: u64,
    times: times::TimesWriter,
    /// Who is told of each write, once [`SessionLog::announce`]d.
    events: Option<LogEvents>,
    /// Output bytes kept (not counting daemon lines), against the cap.
    written: u64,
    truncated: bool,
    /// Output kept at most ([`SessionLog::limit`]).
    cap: u64,
    /// What the user must be told about this log (see [`SessionLog::take_alert`]).
    alert: Option<String>,
}

impl SessionLog {
    /// Creates the log. Old logs are pruned separately ([`prune`]).
    pub fn create(
        root: &Path,
        agent: &AgentId,
        session: &SessionId,
        runner: &str,
        prompt: &str,
    ) -> SessionLog {
        SessionLog::create_announced(root, agent, session, runner, prompt, None)
    }

    /// [`SessionLog::create`], telling `events` (when given) of the log's
    /// start, of every write and, once it is dropped, of its close. The log
    /// counts as open before its first byte is written, so a follower that
    /// finds it closed has all of it on disk.
    pub fn create_announced(
        root: &Path,
        agent: &AgentId,
        session: &SessionId,
        runner: &str,
        prompt: &str,
        events: Option<&LogEvents>,
    ) -> SessionLog {
        let dir = root.join(agent.as_str());
        let path = session_log_path(root, agent, session);
        let opened = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&path)
            });
        let file = match opened {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(agent = %agent, session = %session, error = %e, "cannot write the session log");
                None
            }
        };
        let mut log = SessionLog::writing_to(agent, session, &path, file);
        if let Some(events) = events {
            events.opened(session);
        }
        log.line(&start_record(session, runner, prompt));
        if let Some(events) = events {
            // Started once the start record (the header's source) is there.
            events.send(agent, session, LogEventKind::Started);
            log.events = Some(events.clone());
        }
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
        let path = session_log_path(root, agent, session);
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok(SessionLog::writing_to(agent, session, &path, Some(file)))
    }

    fn writing_to(
        agent: &AgentId,
        session: &SessionId,
        path: &Path,
        file: Option<std::fs::File>,
    ) -> SessionLog {
        let pos = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        SessionLog {
            agent: agent.clone(),
            session: session.clone(),
            times: times::TimesWriter::open(path),
            file,
            pos,
            events: None,
            written: 0,
            truncated: false,
            cap: DEFAULT_MAX_LOG_BYTES,
            alert: None,
        }
    }

    /// Sets the most output this log keeps.
    pub fn limit(&mut self, max_bytes: u64) {
        self.cap = max_bytes;
    }

    /// Records the runner's process (the log's second line, right after the
    /// start record): a daemon that finds this session unfinished ends that
    /// process group if it still runs ([`runner_record`]).
    pub fn runner_started(&mut self, record: &RunnerRecord) {
        self.line(&format!("{}\n", record.to_line()));
    }

    /// Appends runner output, up to the cap; reaching it is written in the
    /// log and raised as an alert.
    pub fn output(&mut self, text: &str) {
        if self.truncated {
            return;
        }
        if self.written + text.len() as u64 > self.cap {
            let room = (self.cap - self.written.min(self.cap)) as usize;
            let cut = text.floor_char_boundary(room);
            self.written += cut as u64;
            self.line(&text[..cut]);
            self.truncated = true;
            let mb = self.cap / (1024 * 1024);
            self.line(&format!(
                "\n# … the local log stops here: it reached its cap of {mb} MB ([logs] max_log_mb); the output after this is not kept\n"
            ));
            self.raise(format!(
                "⚠️ This run's local log reached its cap of {mb} MB ([logs] max_log_mb in the daemon's config): output past it is not kept on the computer"
            ));
            return;
        }
        self.written += text.len() as u64;
        self.line(text);
    }

    /// A message for the user about this log (its cap reached, a write
    /// failed), once; the session sends it into the stream as a notice, so
    /// that a log that stops keeping output never does so silently.
    pub fn take_alert(&mut self) -> Option<String> {
        self.alert.take()
    }

    fn raise(&mut self, alert: String) {
        if self.alert.is_none() {
            self.alert = Some(alert);
        }
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
        let Some(f) = self.file.as_mut() else {
            return;
        };
        // The time first: a reader that sees the bytes finds their mark.
        self.times.mark(self.pos, remoteagent_proto::now_ms());
        if let Err(e) = f.write_all(text.as_bytes()) {
            tracing::warn!(error = %e, "session log write failed; the local log stops here");
            self.file = None;
            self.raise(format!(
                "⚠️ This run's local log could not be written ({e}): output from here is not kept on the computer"
            ));
            return;
        }
        self.pos += text.len() as u64;
        if let Some(events) = &self.events {
            events.send(&self.agent, &self.session, LogEventKind::Wrote);
        }
    }
}

impl Drop for SessionLog {
    fn drop(&mut self) {
        if let Some(events) = &self.events {
            events.closed(&self.agent, &self.session);
        }
    }
}

/// The runner recorded in the log at `path` by [`SessionLog::runner_started`],
/// if any. Only the second line counts: runner output comes after it, so a
/// runner cannot forge a record (which would name a process to kill).
pub fn runner_record(path: &Path) -> std::io::Result<Option<RunnerRecord>> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(HEAD_BYTES)
        .read_to_end(&mut head)?;
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split('\n');
    let starts = lines.next().is_some_and(|l| l.starts_with(START_MARK));
    // A second line without its newline may be cut short: not a record.
    let second = lines.next().filter(|_| lines.next().is_some());
    Ok(match second {
        Some(line) if starts => RunnerRecord::parse_line(line),
        _ => None,
    })
}

/// Bytes read from the start of a log to find its runner record: more than
/// the start record (its prompt preview is 200 characters).
const HEAD_BYTES: u64 = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::events::DoneStatus;

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
            stopped_by: None,
            turns: None,
            cost_usd: None,
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
            stopped_by: None,
            turns: None,
            cost_usd: None,
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
    fn writes_output_notes_and_the_end() {
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
            stopped_by: None,
            turns: None,
            cost_usd: None,
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

        let mut log = SessionLog::reopen(root.path(), &agent, &s).unwrap();
        assert_eq!(log.take_alert(), None);
        log.output("more");
        assert_eq!(log.take_alert(), None);
    }

    #[test]
    fn a_log_keeps_everything_up_to_its_cap_and_says_when_it_stops() {
        let root = tempfile::tempdir().unwrap();
        let agent = AgentId::generate();
        let big = SessionId::generate();
        let mut log = SessionLog::create(root.path(), &agent, &big, "sh", "p");
        log.limit(3 * 1024 * 1024);
        // Past the old 8 MiB cap with the default, and whole.
        let block = "é".repeat(512 * 1024 + 1);
        log.output("a");
        for _ in 0..2 {
            log.output(&block);
            assert_eq!(log.take_alert(), None);
        }
        // The third block passes 3 MiB: cut on a character boundary.
        log.output(&block);
        let alert = log.take_alert().unwrap();
        assert!(
            alert.contains("3 MB") && alert.contains("max_log_mb"),
            "{alert}"
        );
        log.output("never kept");
        assert_eq!(log.take_alert(), None, "said once");
        let text = std::fs::read_to_string(session_log_path(root.path(), &agent, &big)).unwrap();
        let body = text.split_once('\n').unwrap().1;
        let (kept, note) = body.split_once("\n# … the local log stops here").unwrap();
        assert_eq!(kept.len(), 3 * 1024 * 1024 - 1);
        assert!(kept.strip_prefix('a').unwrap().chars().all(|c| c == 'é'));
        assert!(
            note.contains("3 MB") && !note.contains("never kept"),
            "{note}"
        );

        let mut whole = SessionLog::create(root.path(), &agent, &SessionId::generate(), "sh", "p");
        for _ in 0..10 {
            whole.output(&"x".repeat(1024 * 1024));
        }
        assert_eq!(whole.take_alert(), None);
    }

    #[test]
    fn the_runner_record_is_the_second_line_only() {
        let root = tempfile::tempdir().unwrap();
        let agent = AgentId::generate();
        let record = RunnerRecord {
            pgid: 4242,
            start_ticks: Some(99),
            boot_id: Some("ab-cd".into()),
        };
        let s = SessionId::generate();
        let mut log = SessionLog::create(root.path(), &agent, &s, "sh", "two\nlines");
        log.runner_started(&record);
        log.output(&format!(
            "{}\n",
            RunnerRecord {
                pgid: 7,
                ..record.clone()
            }
            .to_line()
        ));
        let path = session_log_path(root.path(), &agent, &s);
        assert_eq!(runner_record(&path).unwrap(), Some(record.clone()));
        // Output that looks like a record, in a log without one, is output.
        let forged = SessionId::generate();
        let mut log = SessionLog::create(root.path(), &agent, &forged, "sh", "p");
        log.output(&format!("x\n{}\n", record.to_line()));
        log.output(&format!("{}\n", record.to_line()));
        let path = session_log_path(root.path(), &agent, &forged);
        assert_eq!(runner_record(&path).unwrap(), None);
        assert!(runner_record(&root.path().join("missing.log")).is_err());
    }
}
