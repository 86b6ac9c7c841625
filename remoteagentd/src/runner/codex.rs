//! Codex CLI's `codex exec --json` made readable.
//!
//! Each stdout line is a JSON event: `thread.started {thread_id}`,
//! `turn.started`, `item.started|updated|completed {item}`, `turn.completed
//! {usage}`, `turn.failed {error}` and `error {message}`. Items carry a
//! `type`: agent messages become text, each command one line (`▸ $ cargo
//! test`, then `  ✖ exit 101` if it failed), each file change one line per
//! file (`▸ Edit src/main.rs`), MCP calls `▸ server.tool`, web searches
//! `▸ Search …`; reasoning stays private. The `thread_id` is kept: it is the
//! conversation the next prompt resumes (`codex exec resume <id>`).
//!
//! Lines that are not JSON, and events or items this code does not know,
//! are passed through unchanged.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use super::text::{EventRenderer, JsonEvents, PathShortener, first_line, valid_conversation_id};

/// Longest command shown.
pub(crate) const COMMAND_CHARS: usize = 160;
/// Longest error line.
pub(crate) const ERROR_CHARS: usize = 300;

/// Codex's events; [`CodexStream`] is the stream around them.
#[derive(Debug)]
pub struct CodexEvents {
    paths: PathShortener,
    thread_id: Option<String>,
    /// Items whose line was printed when they started, so their completion
    /// adds only the outcome.
    announced: HashSet<String>,
}

pub type CodexStream = JsonEvents<CodexEvents>;

impl JsonEvents<CodexEvents> {
    /// `project` is the folder Codex runs in; paths under it are shown
    /// relative.
    pub fn new(project: &Path) -> Self {
        JsonEvents::around(CodexEvents {
            paths: PathShortener::new(project),
            thread_id: None,
            announced: HashSet::new(),
        })
    }

    /// The thread id from `thread.started`.
    pub fn thread_id(&self) -> Option<&str> {
        self.renderer().thread_id.as_deref()
    }
}

impl EventRenderer for CodexEvents {
    fn render(&mut self, kind: &str, event: &Value) -> Option<String> {
        let item = event.get("item");
        match (kind, item) {
            ("thread.started", _) => {
                match event.get("thread_id").and_then(Value::as_str) {
                    Some(id) if valid_conversation_id(id) => self.thread_id = Some(id.to_string()),
                    Some(id) => tracing::warn!(
                        thread_id = %id.chars().take(80).collect::<String>(),
                        "ignored a Codex thread id that is not a plain token"
                    ),
                    None => {}
                }
                Some(String::new())
            }
            ("turn.started", _) | ("item.updated", _) | ("item.plan.delta", _) => {
                Some(String::new())
            }
            ("turn.completed", _) => Some(render_usage(event.get("usage"))),
            ("turn.failed", _) => {
                let message = event
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                Some(format!(
                    "\n✖ turn failed: {}\n",
                    first_line(message, ERROR_CHARS)
                ))
            }
            ("error", _) => event
                .get("message")
                .and_then(Value::as_str)
                .map(|m| format!("✖ {}\n", first_line(m, ERROR_CHARS))),
            ("item.started", Some(item)) => self.item_started(item),
            ("item.completed", Some(item)) => self.item_completed(item),
            _ => None,
        }
    }
}

impl CodexEvents {
    /// `None`: an item this code does not know (shown raw).
    fn item_started(&mut self, item: &Value) -> Option<String> {
        let id = item.get("id").and_then(Value::as_str).unwrap_or("");
        let line = match item_type(item)? {
            "command_execution" => command_line(item),
            "mcp_tool_call" => mcp_line(item),
            "todo_list" => {
                let n = item
                    .get("items")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let s = if n == 1 { "" } else { "s" };
                format!("▸ Plan: {n} step{s}\n")
            }
            // Shown once complete (a web search's query arrives then).
            "agent_message" | "assistant_message" | "reasoning" | "file_change" | "web_search"
            | "error" | "plan" | "collab_tool_call" => return Some(String::new()),
            _ => return None,
        };
        if !id.is_empty() {
            self.announced.insert(id.to_string());
        }
        Some(line)
    }

    fn item_completed(&mut self, item: &Value) -> Option<String> {
        let id = item.get("id").and_then(Value::as_str).unwrap_or("");
        let announced = self.announced.remove(id);
        let status = item.get("status").and_then(Value::as_str).unwrap_or("");
        let text = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or("");
        let out = match item_type(item)? {
            "agent_message" | "assistant_message" | "plan" => {
                let t = text("text");
                if t.trim().is_empty() {
                    String::new()
                } else if t.ends_with('\n') {
                    t.to_string()
                } else {
                    format!("{t}\n")
                }
            }
            "reasoning" | "todo_list" => String::new(),
            "command_execution" => {
                let mut out = if announced {
                    String::new()
                } else {
                    command_line(item)
                };
                let exit = item.get("exit_code").and_then(Value::as_i64);
                match (status, exit) {
                    ("declined", _) => out.push_str("  ✖ declined\n"),
                    (_, Some(code)) if code != 0 => out.push_str(&format!("  ✖ exit {code}\n")),
                    ("failed", _) => out.push_str("  ✖ failed\n"),
                    _ => {}
                }
                out
            }
            "file_change" => {
                let mut out = String::new();
                for change in item
                    .get("changes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let path = change.get("path").and_then(Value::as_str).unwrap_or("?");
                    let verb = match change.get("kind").and_then(Value::as_str) {
                        Some("add") => "Add",
                        Some("delete") => "Delete",
                        _ => "Edit",
                    };
                    out.push_str(&format!("▸ {verb} {}\n", self.paths.shorten(path)));
                }
                if status == "failed" {
                    out.push_str("  ✖ patch not applied\n");
                }
                out
            }
            "mcp_tool_call" => {
                let mut out = if announced {
                    String::new()
                } else {
                    mcp_line(item)
                };
                if status == "failed" {
                    let message = item
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("failed");
                    out.push_str(&format!("  ✖ {}\n", first_line(message, ERROR_CHARS)));
                }
                out
            }
            "web_search" => format!("▸ Search {}\n", first_line(text("query"), COMMAND_CHARS)),
            "collab_tool_call" => format!("▸ Agent {}\n", text("tool")),
            "error" => format!("✖ {}\n", first_line(text("message"), ERROR_CHARS)),
            _ => return None,
        };
        Some(out)
    }
}

/// Items are tagged `type`; the first `--json` release called it `item_type`.
fn item_type(item: &Value) -> Option<&str> {
    item.get("type")
        .or_else(|| item.get("item_type"))
        .and_then(Value::as_str)
}

pub(crate) fn command_line(item: &Value) -> String {
    let command = item.get("command").and_then(Value::as_str).unwrap_or("");
    format!("▸ $ {}\n", first_line(unwrap_shell(command), COMMAND_CHARS))
}

pub(crate) fn mcp_line(item: &Value) -> String {
    let server = item.get("server").and_then(Value::as_str).unwrap_or("mcp");
    let tool = item.get("tool").and_then(Value::as_str).unwrap_or("tool");
    format!("▸ {server}.{tool}\n")
}

/// Codex runs commands as `bash -lc '…'`; the wrapper says nothing.
pub(crate) fn unwrap_shell(command: &str) -> &str {
    const SHELLS: &[&str] = &[
        "bash -lc ",
        "/bin/bash -lc ",
        "/usr/bin/bash -lc ",
        "zsh -lc ",
        "/bin/zsh -lc ",
        "sh -c ",
        "/bin/sh -c ",
    ];
    let Some(rest) = SHELLS.iter().find_map(|s| command.strip_prefix(s)) else {
        return command;
    };
    for quote in ['\'', '"'] {
        if let Some(inner) = rest.strip_prefix(quote).and_then(|r| r.strip_suffix(quote))
            && !inner.contains(quote)
        {
            return inner;
        }
    }
    rest
}

fn render_usage(usage: Option<&Value>) -> String {
    let n = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_i64);
    let mut line = String::from("\n✔ done");
    if let (Some(input), Some(output)) = (n("input_tokens"), n("output_tokens")) {
        line.push_str(&format!(" · {input} tokens in"));
        if let Some(cached) = n("cached_input_tokens").filter(|c| *c > 0) {
            line.push_str(&format!(" ({cached} cached)"));
        }
        line.push_str(&format!(", {output} out"));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::text::test_support::{fixture, in_pieces};

    fn feed(input: &str, size: usize) -> (String, Option<String>) {
        let mut s = CodexStream::new(Path::new("/home/me/web"));
        let mut out = in_pieces(input, size, |piece| s.push(piece));
        out += &s.finish();
        (out, s.thread_id().map(str::to_string))
    }

    #[test]
    fn a_recorded_session_renders_exactly_in_any_pieces() {
        let input = fixture("codex-session.jsonl");
        let want = fixture("codex-session.txt");
        for size in [1, 3, 17, 256, input.len()] {
            let (out, id) = feed(&input, size);
            assert_eq!(out, want, "pieces of {size}");
            assert_eq!(id.as_deref(), Some("0199a213-81c0-7800-8aa1-bbab2a035a53"));
        }
    }

    #[test]
    fn a_failed_turn_says_why() {
        let input = fixture("codex-failed.jsonl");
        let want = fixture("codex-failed.txt");
        for size in [2, input.len()] {
            let (out, id) = feed(&input, size);
            assert_eq!(out, want, "pieces of {size}");
            assert_eq!(id.as_deref(), Some("0199b7c4-2d1e-7f30-9a8b-5c6d7e8f9012"));
        }
    }

    #[test]
    fn the_first_json_shape_and_unknown_events_still_read() {
        let (out, id) = feed(
            concat!(
                r#"{"type":"item.completed","item":{"id":"item_3","item_type":"assistant_message","text":"Old shape."}}"#,
                "\n",
                r#"{"type":"item.completed","item":{"id":"item_4","type":"hologram","x":1}}"#,
                "\n",
                r#"{"type":"session.renamed","name":"x"}"#,
                "\n",
                r#"{"type":"thread.started","thread_id":"../../etc"}"#,
                "\n",
                "Reading prompt from stdin...\n",
                r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":2}}"#,
            ),
            5,
        );
        assert_eq!(
            out,
            concat!(
                "Old shape.\n",
                r#"{"type":"item.completed","item":{"id":"item_4","type":"hologram","x":1}}"#,
                "\n",
                r#"{"type":"session.renamed","name":"x"}"#,
                "\n",
                "Reading prompt from stdin...\n",
                "\n✔ done · 10 tokens in, 2 out\n",
            )
        );
        assert_eq!(id, None);
    }

    #[test]
    fn shell_wrappers_are_dropped() {
        assert_eq!(unwrap_shell("bash -lc 'cargo test'"), "cargo test");
        assert_eq!(unwrap_shell("/bin/bash -lc \"ls -la\""), "ls -la");
        assert_eq!(
            unwrap_shell("bash -lc 'echo '\\''x'\\'''"),
            "'echo '\\''x'\\'''"
        );
        assert_eq!(unwrap_shell("cargo test"), "cargo test");
    }
}
