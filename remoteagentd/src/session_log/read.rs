//! Reading session logs back for `remoteagentctl logs`: their last lines
//! with the time each was written ([`tail`]), the lines appended since
//! ([`Cursor`]), and what the start and end records say ([`summary`]).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::times::Marks;
use super::{DONE_MARK, START_MARK, TAIL_BYTES, is_done_record};

/// How much of a log's end is read to find its last lines: enough for any
/// sensible `-n`, bounded so a huge log cannot exhaust memory.
const TAIL_WINDOW: u64 = 4 * 1024 * 1024;

/// One line of a log, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedLine {
    pub text: String,
    /// When it was written; `None` in a log older than the times sidecar.
    pub time_ms: Option<u64>,
}

/// Splits `bytes` (read from offset `base`) into complete lines with their
/// times; returns them and the bytes of an unfinished last line.
fn split_lines(bytes: &[u8], base: u64, marks: &Marks) -> (Vec<TimedLine>, usize) {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(len) = bytes[start..].iter().position(|&b| b == b'\n') {
        lines.push(TimedLine {
            text: String::from_utf8_lossy(&bytes[start..start + len]).into_owned(),
            time_ms: marks.time_at(base + start as u64),
        });
        start += len + 1;
    }
    (lines, start)
}

/// The last `n` lines of the log at `path` written at or after `since_ms`
/// (a line without a time counts as written at `fallback_ms`, the session's
/// start), and the offset after the last whole line. With `whole_only` an
/// unfinished last line is left for a [`Cursor`] to read once complete;
/// without, it is shown as it is.
pub fn tail(
    path: &Path,
    n: usize,
    since_ms: Option<u64>,
    fallback_ms: Option<u64>,
    whole_only: bool,
) -> std::io::Result<(Vec<TimedLine>, u64)> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.by_ref().take(len - start).read_to_end(&mut bytes)?;
    let mut marks = Marks::default();
    marks.refresh(path);
    let (mut lines, whole) = split_lines(&bytes, start, &marks);
    // A window that starts mid-file starts mid-line: drop that fragment.
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let mut end = start + whole as u64;
    if !whole_only && whole < bytes.len() {
        lines.push(TimedLine {
            text: String::from_utf8_lossy(&bytes[whole..]).into_owned(),
            time_ms: marks.time_at(end),
        });
        end = start + bytes.len() as u64;
    }
    if let Some(since) = since_ms {
        lines.retain(|l| l.time_ms.or(fallback_ms).is_some_and(|t| t >= since));
    }
    let skip = lines.len().saturating_sub(n);
    lines.drain(..skip);
    Ok((lines, end))
}

/// Reads a log on from an offset, whole lines at a time, as it grows.
#[derive(Debug)]
pub struct Cursor {
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
    marks: Marks,
}

impl Cursor {
    /// Reads `path` from `offset`, which must be at a line's start.
    pub fn new(path: PathBuf, offset: u64) -> Cursor {
        Cursor {
            path,
            offset,
            pending: Vec::new(),
            marks: Marks::default(),
        }
    }

    /// The whole lines appended since the last call.
    pub fn read_new(&mut self) -> std::io::Result<Vec<TimedLine>> {
        let mut file = std::fs::File::open(&self.path)?;
        let len = file.metadata()?.len();
        let read_to = self.offset + self.pending.len() as u64;
        if len < read_to {
            // Replaced or truncated (nothing here does that): start over.
            self.offset = 0;
            self.pending.clear();
        }
        let from = self.offset + self.pending.len() as u64;
        if len == from {
            return Ok(Vec::new());
        }
        file.seek(SeekFrom::Start(from))?;
        file.take(len - from).read_to_end(&mut self.pending)?;
        // The marks of these bytes were written before them.
        self.marks.refresh(&self.path);
        let (lines, whole) = split_lines(&self.pending, self.offset, &self.marks);
        self.pending.drain(..whole);
        self.offset += whole as u64;
        Ok(lines)
    }
}

/// What a log's start and end records say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub started_ms: Option<u64>,
    pub runner: String,
    pub prompt: String,
    /// The end record's status and duration, when it has one.
    pub end: Option<(String, u64)>,
    pub modified_ms: u64,
}

/// Reads the first line and the end of the log at `path`.
pub fn summary(path: &Path) -> std::io::Result<Summary> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let modified_ms = meta
        .modified()
        .unwrap_or(SystemTime::UNIX_EPOCH)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut head = Vec::new();
    file.by_ref()
        .take(super::HEAD_BYTES)
        .read_to_end(&mut head)?;
    let head = String::from_utf8_lossy(&head);
    let first = head.split('\n').next().unwrap_or_default();
    let mut out = Summary {
        modified_ms,
        ..Summary::default()
    };
    // `# session <id> started <time> runner <runner> prompt: <preview>`
    if let Some(rest) = first.strip_prefix(START_MARK)
        && let Some((_, rest)) = rest.split_once(" started ")
        && let Some((time, rest)) = rest.split_once(" runner ")
    {
        // The sidecar has the start to the millisecond; the record to the
        // second (and is all an older log has).
        out.started_ms = super::times::first_mark(path).or(remoteagent_proto::rfc3339::parse(time));
        let (runner, prompt) = rest.split_once(" prompt: ").unwrap_or((rest, ""));
        out.runner = runner.to_string();
        out.prompt = prompt.to_string();
    }
    let from = meta.len().saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut tail)?;
    let tail = String::from_utf8_lossy(&tail);
    let body = tail.strip_suffix('\n').unwrap_or(&tail);
    let last = body.rsplit('\n').next().unwrap_or_default();
    out.end = done_record(last);
    Ok(out)
}

/// The status and duration of an end record (`# done <status> exit <code>
/// in <ms> ms[: message]`).
pub fn done_record(line: &str) -> Option<(String, u64)> {
    if !is_done_record(line) {
        return None;
    }
    let words: Vec<&str> = line.strip_prefix(DONE_MARK)?.splitn(6, ' ').collect();
    Some((words[0].to_string(), words[4].parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_log::{SessionLog, session_log_path};
    use remoteagent_proto::events::{DonePayload, DoneStatus};
    use remoteagent_proto::{AgentId, SessionId};

    #[test]
    fn tail_takes_the_last_lines_with_their_times() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.log");
        std::fs::write(&path, "a\nb\nc\nd\npart").unwrap();
        std::fs::write(super::super::times::times_path(&path), "0 100\n4 200\n").unwrap();
        let (lines, end) = tail(&path, 2, None, None, true).unwrap();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, vec!["c", "d"]);
        assert_eq!(lines[0].time_ms, Some(200));
        assert_eq!(end, 8);
        let (all, end) = tail(&path, 100, None, None, false).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].time_ms, Some(100));
        assert_eq!(all[4].text, "part");
        assert_eq!(end, 12);
        let (since, _) = tail(&path, 100, Some(150), None, true).unwrap();
        assert_eq!(since.len(), 2);

        // Without a sidecar (an older log), the fallback decides `since`.
        let old = tmp.path().join("old.log");
        std::fs::write(&old, "x\ny\n").unwrap();
        let (lines, _) = tail(&old, 10, Some(150), Some(100), true).unwrap();
        assert!(lines.is_empty());
        let (lines, _) = tail(&old, 10, Some(150), Some(200), true).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].time_ms, None);
    }

    #[test]
    fn a_cursor_reads_whole_lines_as_they_come() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.log");
        std::fs::write(&path, "a\n").unwrap();
        let mut c = Cursor::new(path.clone(), 2);
        assert!(c.read_new().unwrap().is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"b\nha").unwrap();
        let got: Vec<String> = c.read_new().unwrap().into_iter().map(|l| l.text).collect();
        assert_eq!(got, vec!["b"]);
        std::io::Write::write_all(&mut f, b"lf\n").unwrap();
        let got: Vec<String> = c.read_new().unwrap().into_iter().map(|l| l.text).collect();
        assert_eq!(got, vec!["half"]);
    }

    #[test]
    fn the_summary_reads_the_start_and_end_records() {
        let root = tempfile::tempdir().unwrap();
        let agent = AgentId::generate();
        let s = SessionId::generate();
        let mut log =
            SessionLog::create(root.path(), &agent, &s, "sh run.sh", "fix the tests\nnow");
        let path = session_log_path(root.path(), &agent, &s);
        let running = summary(&path).unwrap();
        assert_eq!(running.runner, "sh run.sh");
        assert_eq!(running.prompt, "fix the tests now");
        assert!(running.started_ms.unwrap() > 1_700_000_000_000);
        assert_eq!(running.end, None);
        log.output("work\n");
        log.done(&DonePayload {
            status: DoneStatus::Failed,
            exit_code: Some(3),
            duration_ms: 1234,
            message: Some("it broke".into()),
            chunks: 1,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        });
        assert_eq!(summary(&path).unwrap().end, Some(("failed".into(), 1234)));
        // Every line written by the log has a time.
        let (lines, _) = tail(&path, 100, None, None, true).unwrap();
        assert!(lines.iter().all(|l| l.time_ms.is_some()), "{lines:?}");
        assert_eq!(lines.len(), 4, "{lines:?}");
    }
}
