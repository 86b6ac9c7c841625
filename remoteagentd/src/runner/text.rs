//! Text helpers the runner renderers share: splitting a stream into lines,
//! the JSON-lines event stream around one CLI's renderer ([`JsonEvents`]),
//! shortening project paths, one-line summaries, the check on the
//! conversation ids runners report, and what they report of a run
//! ([`RunStats`]). A leaf, so the renderers
//! (`claude.rs`, `codex.rs`) and the format that picks one (`format.rs`)
//! do not import each other for them.

use std::path::Path;

use remoteagent_proto::events::Usd;
use serde_json::Value;

/// What a runner reported about its run, for the session's `done`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Turns of the conversation (Claude Code's `num_turns`).
    pub turns: Option<u64>,
    /// What the run cost (Claude Code's `total_cost_usd`).
    pub cost_usd: Option<Usd>,
}

/// Longest line kept while waiting for its end. A runner writing megabytes
/// without a newline gets them passed on raw instead of held in memory.
pub const MAX_LINE: usize = 8 * 1024 * 1024;

/// Longest conversation id accepted from a runner.
const MAX_CONVERSATION_ID: usize = 128;

/// Whether `id` may be stored and passed back to a CLI as `--resume <id>`.
/// The ids come from the runner's output, so they are checked: an id that
/// began with `-` would be read as an option, and anything beyond a plain
/// token has no business in argv or the metadata file.
pub fn valid_conversation_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CONVERSATION_ID
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One CLI's JSON events made readable (Claude's `stream-json`, Codex's
/// `exec --json`).
pub trait EventRenderer {
    /// The text for one event whose `type` is `kind`; `None` for an event
    /// this code does not know, which [`JsonEvents`] shows as it came.
    fn render(&mut self, kind: &str, event: &Value) -> Option<String>;
}

/// A JSON-lines stream around an [`EventRenderer`]: split into lines, blank
/// lines dropped, and a line that is not a JSON object with a `type` shown
/// as it came, so a format change degrades to raw output, never silence.
#[derive(Debug)]
pub struct JsonEvents<R> {
    lines: Lines,
    renderer: R,
}

impl<R: EventRenderer> JsonEvents<R> {
    pub fn around(renderer: R) -> Self {
        JsonEvents {
            lines: Lines::default(),
            renderer,
        }
    }

    /// Feeds decoded stdout text; returns the readable text of every
    /// complete line.
    pub fn push(&mut self, text: &str) -> String {
        let mut out = String::new();
        for line in self.lines.push(text) {
            out.push_str(&self.render_line(&line));
        }
        out
    }

    /// The last line, if the stream did not end with a newline.
    pub fn finish(&mut self) -> String {
        match self.lines.finish() {
            Some(line) => self.render_line(&line),
            None => String::new(),
        }
    }

    pub fn renderer(&self) -> &R {
        &self.renderer
    }

    fn render_line(&mut self, line: &str) -> String {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return String::new();
        }
        let event = serde_json::from_str::<Value>(trimmed).ok();
        let kind = event
            .as_ref()
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str);
        match (kind, &event) {
            (Some(kind), Some(event)) => self.renderer.render(kind, event),
            _ => None,
        }
        .unwrap_or_else(|| format!("{line}\n"))
    }
}

/// Splits a text stream into lines (without their `\n` or `\r\n`).
#[derive(Debug, Default)]
pub struct Lines {
    partial: String,
}

impl Lines {
    /// Feeds text; returns the lines it completed.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for piece in text.split_inclusive('\n') {
            match piece.strip_suffix('\n') {
                Some(end) => {
                    self.partial.push_str(end);
                    let mut line = std::mem::take(&mut self.partial);
                    if line.ends_with('\r') {
                        line.pop();
                    }
                    lines.push(line);
                }
                None => {
                    self.partial.push_str(piece);
                    if self.partial.len() > MAX_LINE {
                        lines.push(std::mem::take(&mut self.partial));
                    }
                }
            }
        }
        lines
    }

    /// The last line, if the stream did not end with a newline.
    pub fn finish(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.partial);
        (!line.is_empty()).then_some(line)
    }
}

/// Turns absolute paths under the project folder into relative ones
/// (`/home/me/web/src/main.rs` → `src/main.rs`): shorter on a phone.
#[derive(Debug, Default, Clone)]
pub struct PathShortener {
    roots: Vec<String>,
}

impl PathShortener {
    pub fn new(root: &Path) -> Self {
        let mut s = Self::default();
        s.add_root(root);
        s
    }

    /// Another folder to shorten against (the CLI's own idea of its cwd,
    /// which may differ from ours by a symlink).
    pub fn add_root(&mut self, root: &Path) {
        let Some(root) = root.to_str() else { return };
        let root = root.trim_end_matches('/');
        if root.is_empty() || self.roots.iter().any(|r| r == root) {
            return;
        }
        self.roots.push(root.to_string());
    }

    pub fn shorten<'a>(&self, path: &'a str) -> &'a str {
        for root in &self.roots {
            if let Some(rest) = path
                .strip_prefix(root.as_str())
                .and_then(|r| r.strip_prefix('/'))
                && !rest.is_empty()
            {
                return rest;
            }
        }
        path
    }
}

/// The first line of `text`, at most `max` characters (with `…` when cut).
pub fn first_line(text: &str, max: usize) -> String {
    let line = text.trim().lines().next().unwrap_or("").trim_end();
    let mut out: String = line.chars().take(max).collect();
    if line.chars().count() > max || text.trim().lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

/// Shared by the renderers' tests: recorded streams and feeding them in
/// awkward pieces.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;

    /// Calls `push` with `input` in pieces of about `size` bytes, cut
    /// anywhere except inside a character; returns everything it returned.
    pub fn in_pieces(input: &str, size: usize, mut push: impl FnMut(&str) -> String) -> String {
        let mut out = String::new();
        let mut start = 0;
        while start < input.len() {
            let end = input.ceil_char_boundary(start + size);
            out += &push(&input[start..end]);
            start = end;
        }
        out
    }

    /// A file of `remoteagentd/tests/fixtures`.
    pub fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids_are_plain_tokens() {
        assert!(valid_conversation_id(
            "8f1c2a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f"
        ));
        assert!(valid_conversation_id("thread_01"));
        for bad in [
            "",
            "-rf",
            "--help",
            "a b",
            "a/b",
            "a\nb",
            "ü",
            &"x".repeat(129),
        ] {
            assert!(!valid_conversation_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn lines_are_split_across_pushes() {
        let mut l = Lines::default();
        assert_eq!(l.push("a\r\nb"), vec!["a".to_string()]);
        assert_eq!(l.push("c\n\nd"), vec!["bc".to_string(), String::new()]);
        assert_eq!(l.finish().as_deref(), Some("d"));
        assert_eq!(l.finish(), None);
    }

    #[test]
    fn paths_under_the_project_are_shortened() {
        let mut s = PathShortener::new(Path::new("/home/me/web/"));
        s.add_root(Path::new("/srv/web"));
        assert_eq!(s.shorten("/home/me/web/src/main.rs"), "src/main.rs");
        assert_eq!(s.shorten("/srv/web/Cargo.toml"), "Cargo.toml");
        assert_eq!(s.shorten("/home/me/webapp/x"), "/home/me/webapp/x");
        assert_eq!(s.shorten("/home/me/web"), "/home/me/web");
        assert_eq!(s.shorten("relative/x"), "relative/x");
    }
}
