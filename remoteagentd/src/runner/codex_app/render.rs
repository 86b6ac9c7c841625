//! `codex app-server`'s notifications made readable, the way `codex exec
//! --json` output is ([`crate::runner::codex`]): agent messages as text,
//! each command one line (`▸ $ cargo test`) followed by its output and
//! `  ✖ exit 101` or `  ✖ declined`, each file change one line per file
//! (`▸ Edit src/main.rs`), and the turn's end. The thread id is kept for the
//! next prompt (`thread/resume`).
//!
//! The [`super::client`] hands each notification on as `{"type": method,
//! "params": …}`. The server sends many notifications about its own state
//! (status changes, token counts, retries); those say nothing to the user
//! and are dropped.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use super::client::{FAILED, NOTE};
use super::protocol as p;
use crate::runner::codex::{COMMAND_CHARS, ERROR_CHARS, command_line, mcp_line};
use crate::runner::text::{
    EventRenderer, JsonEvents, PathShortener, first_line, valid_conversation_id,
};

/// Most output shown of one command, in bytes; the rest is summed up.
const OUTPUT_BYTES: usize = 4000;

#[derive(Debug)]
pub struct CodexAppEvents {
    paths: PathShortener,
    thread_id: Option<String>,
    /// Commands whose line was printed when they started.
    announced: HashSet<String>,
    /// Output bytes shown so far, by command item: one whose output
    /// streamed is not shown again at its end.
    streamed: HashMap<String, usize>,
}

pub type CodexAppStream = JsonEvents<CodexAppEvents>;

impl JsonEvents<CodexAppEvents> {
    pub fn new(project: &Path) -> Self {
        JsonEvents::around(CodexAppEvents {
            paths: PathShortener::new(project),
            thread_id: None,
            announced: HashSet::new(),
            streamed: HashMap::new(),
        })
    }

    /// The thread the run was in.
    pub fn thread_id(&self) -> Option<&str> {
        self.renderer().thread_id.as_deref()
    }
}

impl EventRenderer for CodexAppEvents {
    fn render(&mut self, kind: &str, event: &Value) -> Option<String> {
        let params = event.get("params").unwrap_or(&Value::Null);
        let text = |ptr: &str| params.pointer(ptr).and_then(Value::as_str).unwrap_or("");
        let out = match kind {
            p::THREAD_STARTED => {
                match params.pointer("/thread/id").and_then(Value::as_str) {
                    Some(id) if valid_conversation_id(id) => self.thread_id = Some(id.to_string()),
                    Some(_) => {
                        tracing::warn!("ignored a Codex thread id that is not a plain token")
                    }
                    None => {}
                }
                String::new()
            }
            p::ITEM_STARTED => self.item_started(params.get("item")?),
            p::ITEM_COMPLETED => self.item_completed(params.get("item")?),
            p::COMMAND_OUTPUT_DELTA => self.output_delta(text("/itemId"), text("/delta")),
            p::TURN_COMPLETED => match text("/turn/status") {
                "failed" => format!(
                    "\n✖ turn failed: {}\n",
                    first_line(
                        params
                            .pointer("/turn/error/message")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown error"),
                        ERROR_CHARS
                    )
                ),
                "interrupted" => "\n✖ interrupted\n".to_string(),
                _ => "\n✔ done\n".to_string(),
            },
            // Retries say nothing yet; the last failure does.
            p::ERROR if params.get("willRetry").and_then(Value::as_bool) == Some(true) => {
                String::new()
            }
            p::ERROR => format!("✖ {}\n", first_line(text("/error/message"), ERROR_CHARS)),
            FAILED => format!("✖ {}\n", first_line(text("/message"), ERROR_CHARS)),
            NOTE => format!("{}\n", text("/text")),
            _ => String::new(),
        };
        Some(out)
    }
}

impl CodexAppEvents {
    fn item_started(&mut self, item: &Value) -> String {
        match item.get("type").and_then(Value::as_str) {
            Some("commandExecution") => {
                if let Some(id) = item.get("id").and_then(Value::as_str) {
                    self.announced.insert(id.to_string());
                }
                command_line(item)
            }
            _ => String::new(),
        }
    }

    fn output_delta(&mut self, item: &str, delta: &str) -> String {
        let shown = self.streamed.entry(item.to_string()).or_insert(0);
        let out = capped(delta, shown);
        indent_output(&out)
    }

    fn item_completed(&mut self, item: &Value) -> String {
        let id = item.get("id").and_then(Value::as_str).unwrap_or("");
        let status = item.get("status").and_then(Value::as_str).unwrap_or("");
        let text = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or("");
        match item.get("type").and_then(Value::as_str).unwrap_or("") {
            "agentMessage" | "plan" => {
                let t = text("text");
                if t.trim().is_empty() {
                    String::new()
                } else if t.ends_with('\n') {
                    t.to_string()
                } else {
                    format!("{t}\n")
                }
            }
            "commandExecution" => {
                let mut out = if self.announced.remove(id) {
                    String::new()
                } else {
                    command_line(item)
                };
                match self.streamed.remove(id) {
                    Some(_) => {}
                    None => {
                        let mut shown = 0;
                        out.push_str(&indent_output(&capped(
                            text("aggregatedOutput"),
                            &mut shown,
                        )));
                    }
                }
                let exit = item.get("exitCode").and_then(Value::as_i64);
                match (status, exit) {
                    ("declined", _) => out.push_str("  ✖ declined\n"),
                    (_, Some(code)) if code != 0 => out.push_str(&format!("  ✖ exit {code}\n")),
                    ("failed", _) => out.push_str("  ✖ failed\n"),
                    _ => {}
                }
                out
            }
            "fileChange" => {
                let mut out = String::new();
                let changes: Vec<p::FileUpdate> = item
                    .get("changes")
                    .cloned()
                    .and_then(|c| serde_json::from_value(c).ok())
                    .unwrap_or_default();
                for change in &changes {
                    let verb = match change.kind.kind.as_str() {
                        "add" => "Add",
                        "delete" => "Delete",
                        _ => "Edit",
                    };
                    out.push_str(&format!("▸ {verb} {}", self.paths.shorten(&change.path)));
                    if let Some(to) = change.move_path() {
                        out.push_str(&format!(" → {}", self.paths.shorten(&to)));
                    }
                    out.push('\n');
                }
                match status {
                    "declined" => out.push_str("  ✖ declined\n"),
                    "failed" => out.push_str("  ✖ patch not applied\n"),
                    _ => {}
                }
                out
            }
            "mcpToolCall" => {
                let mut out = mcp_line(item);
                if status == "failed" {
                    let message = item
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("failed");
                    out.push_str(&format!("  ✖ {}\n", first_line(message, ERROR_CHARS)));
                }
                out
            }
            "webSearch" => format!("▸ Search {}\n", first_line(text("query"), COMMAND_CHARS)),
            "userMessage" | "reasoning" | "hookPrompt" | "functionCallOutput" => String::new(),
            // An item this build does not know: named, never silent.
            other => format!("▸ {}\n", first_line(other, COMMAND_CHARS)),
        }
    }
}

/// `text`, cut once `shown` (the bytes shown of this command so far)
/// reaches [`OUTPUT_BYTES`], with one line saying so.
fn capped(text: &str, shown: &mut usize) -> String {
    if *shown >= OUTPUT_BYTES {
        *shown += text.len();
        return String::new();
    }
    let room = OUTPUT_BYTES - *shown;
    *shown += text.len();
    if text.len() <= room {
        return text.to_string();
    }
    let mut end = room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… (more output not shown)\n", &text[..end])
}

/// Command output under its command line.
fn indent_output(text: &str) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        out.push_str("  ");
        out.push_str(line);
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::text::test_support::{fixture, in_pieces};

    fn feed(input: &str, size: usize) -> (String, Option<String>) {
        let mut s = CodexAppStream::new(Path::new("/home/me/web"));
        let mut out = in_pieces(input, size, |piece| s.push(piece));
        out += &s.finish();
        (out, s.thread_id().map(str::to_string))
    }

    #[test]
    fn a_recorded_run_renders_exactly_in_any_pieces() {
        let input = fixture("codex-app-session.jsonl");
        let want = fixture("codex-app-session.txt");
        for size in [1, 7, 64, input.len()] {
            let (out, id) = feed(&input, size);
            assert_eq!(out, want, "pieces of {size}");
            assert_eq!(id.as_deref(), Some("01a23838-3704-7532-84c0-90a223aecd5f"));
        }
    }

    #[test]
    fn long_output_is_cut_once() {
        let mut shown = 0;
        let a = capped(&"x".repeat(OUTPUT_BYTES - 1), &mut shown);
        assert_eq!(a.len(), OUTPUT_BYTES - 1);
        let b = capped("é and more", &mut shown);
        assert_eq!(b, "\n… (more output not shown)\n");
        assert_eq!(capped("again", &mut shown), "");
    }
}
