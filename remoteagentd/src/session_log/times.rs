//! When each part of a session log was written, kept beside it in
//! `{sessionId}.times`: one line `<byte offset> <ms since the epoch>` each
//! time output is appended after a pause of at least [`MARK_EVERY_MS`].
//! A line of the log was written at the last mark at or before its first
//! byte (give or take that interval).
//!
//! A sidecar rather than a time on every log line keeps the log what it has
//! always been, the runner's output as `cat` shows it; logs written before
//! there were times simply have no sidecar, and their lines no time.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The finest the times are kept: a busy runner writes many chunks a
/// second, and a mark per chunk would make the sidecar grow with them.
pub const MARK_EVERY_MS: u64 = 100;

/// The sidecar of the log at `log`.
pub fn times_path(log: &Path) -> PathBuf {
    log.with_extension("times")
}

/// Appends marks to a log's sidecar.
pub struct TimesWriter {
    file: Option<std::fs::File>,
    last_ms: Option<u64>,
}

impl TimesWriter {
    /// Opens (or creates, private to the user) the sidecar of `log`. Without
    /// one the log still works, its lines just carry no time: the failure is
    /// logged, not raised.
    pub fn open(log: &Path) -> TimesWriter {
        let path = times_path(log);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path);
        let file = match file {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the session log's times");
                None
            }
        };
        TimesWriter {
            file,
            last_ms: None,
        }
    }

    /// Records that bytes written at `offset` are written at `now_ms`,
    /// unless a mark less than [`MARK_EVERY_MS`] old covers them.
    pub fn mark(&mut self, offset: u64, now_ms: u64) {
        if self
            .last_ms
            .is_some_and(|last| now_ms < last.saturating_add(MARK_EVERY_MS))
        {
            return;
        }
        self.last_ms = Some(now_ms);
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.write_all(format!("{offset} {now_ms}\n").as_bytes())
        {
            tracing::warn!(error = %e, "session log times write failed; later lines carry no time");
            self.file = None;
        }
    }
}

/// When the log at `log` was first written to (its sidecar's first mark).
pub fn first_mark(log: &Path) -> Option<u64> {
    let file = std::fs::File::open(times_path(log)).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(file.take(64))
        .read_line(&mut line)
        .ok()?;
    let (at, ms) = line.trim_end().split_once(' ')?;
    (at == "0").then(|| ms.parse().ok())?
}

/// A log's marks, read as they grow: `(offset, ms)`, in offset order.
#[derive(Debug, Default)]
pub struct Marks {
    marks: Vec<(u64, u64)>,
    /// How far the sidecar has been read (whole lines only).
    read_to: u64,
}

impl Marks {
    /// Reads the marks added to the sidecar of `log` since the last call. A
    /// missing sidecar (an older log) has none.
    pub fn refresh(&mut self, log: &Path) {
        let Ok(mut file) = std::fs::File::open(times_path(log)) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.read_to)).is_err() {
            return;
        }
        let mut reader = std::io::BufReader::new(&mut file);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                // A mark being written is read again next time, whole.
                Ok(_) if !line.ends_with('\n') => break,
                Ok(n) => {
                    self.read_to += n as u64;
                    let mut words = line.split_ascii_whitespace();
                    if let (Some(Ok(at)), Some(Ok(ms))) = (
                        words.next().map(str::parse::<u64>),
                        words.next().map(str::parse::<u64>),
                    ) && self.marks.last().is_none_or(|&(last, _)| at >= last)
                    {
                        self.marks.push((at, ms));
                    }
                }
            }
        }
    }

    /// When the byte at `offset` was written, if the sidecar says.
    pub fn time_at(&self, offset: u64) -> Option<u64> {
        let after = self.marks.partition_point(|&(at, _)| at <= offset);
        after.checked_sub(1).map(|i| self.marks[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_throttled_and_map_offsets_to_times() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("s.log");
        let mut w = TimesWriter::open(&log);
        w.mark(0, 1_000);
        w.mark(10, 1_050); // within the interval: covered by the first
        w.mark(20, 1_100);
        w.mark(35, 5_000);
        let mut marks = Marks::default();
        marks.refresh(&log);
        assert_eq!(marks.time_at(0), Some(1_000));
        assert_eq!(marks.time_at(19), Some(1_000));
        assert_eq!(marks.time_at(20), Some(1_100));
        assert_eq!(marks.time_at(99), Some(5_000));
        // Read on as the sidecar grows.
        w.mark(100, 9_000);
        marks.refresh(&log);
        assert_eq!(marks.time_at(100), Some(9_000));
        let text = std::fs::read_to_string(times_path(&log)).unwrap();
        assert_eq!(text, "0 1000\n20 1100\n35 5000\n100 9000\n");

        let mut none = Marks::default();
        none.refresh(&dir.path().join("old.log"));
        assert_eq!(none.time_at(5), None);
    }
}
