//! Claude Code's `--output-format stream-json` made readable.
//!
//! Each stdout line is a JSON event (`system`, `assistant`, `user`,
//! `result`). Assistant text is passed on as is, each tool use becomes one
//! short line (`▸ Edit src/main.rs`), a failed tool call one line below it
//! (`  ✖ Exit code 1`), and the final `result` a summary line with duration,
//! turns and cost (or what went wrong). The `session_id` the events carry is
//! kept: it is the conversation the next prompt resumes.
//!
//! Lines that are not JSON, and events of a type this code does not know,
//! are passed through unchanged: a format change degrades to raw output
//! rather than silence.

use std::path::Path;

use remoteagent_proto::events::Usd;
use serde_json::Value;

use super::text::{
    EventRenderer, JsonEvents, PathShortener, RunStats, first_line, valid_conversation_id,
};

/// Longest detail shown after a tool's name.
const DETAIL_CHARS: usize = 120;
/// Longest tool error line.
const TOOL_ERROR_CHARS: usize = 200;
/// Longest error message of a failed run.
const RESULT_ERROR_CHARS: usize = 1000;

/// Claude's events; [`ClaudeStream`] is the stream around them.
#[derive(Debug)]
pub struct ClaudeEvents {
    paths: PathShortener,
    session_id: Option<String>,
    /// Turns and cost of the last `result` event.
    stats: RunStats,
}

pub type ClaudeStream = JsonEvents<ClaudeEvents>;

impl JsonEvents<ClaudeEvents> {
    /// `project` is the folder Claude runs in; paths under it are shown
    /// relative.
    pub fn new(project: &Path) -> Self {
        JsonEvents::around(ClaudeEvents {
            paths: PathShortener::new(project),
            session_id: None,
            stats: RunStats::default(),
        })
    }

    /// The conversation id seen in the stream (the last one wins: a resumed
    /// conversation that Claude forked reports its new id).
    pub fn session_id(&self) -> Option<&str> {
        self.renderer().session_id.as_deref()
    }

    /// The turns and cost the run's `result` event reported, if it came.
    pub fn stats(&self) -> RunStats {
        self.renderer().stats
    }
}

impl EventRenderer for ClaudeEvents {
    fn render(&mut self, kind: &str, event: &Value) -> Option<String> {
        Some(match kind {
            "system" => {
                if event.get("subtype").and_then(Value::as_str) == Some("init") {
                    self.note_session(event);
                    if let Some(cwd) = event.get("cwd").and_then(Value::as_str) {
                        self.paths.add_root(Path::new(cwd));
                    }
                }
                // Init, hooks, compaction markers: noise on a phone.
                String::new()
            }
            "assistant" => self.render_assistant(event),
            "user" => render_tool_errors(event),
            "result" => {
                self.note_session(event);
                self.stats = RunStats {
                    turns: event.get("num_turns").and_then(Value::as_u64),
                    cost_usd: event
                        .get("total_cost_usd")
                        .and_then(Value::as_f64)
                        .and_then(Usd::from_dollars),
                };
                render_result(event)
            }
            // Partial-message deltas (only with --include-partial-messages):
            // the complete `assistant` event follows.
            "stream_event" => String::new(),
            _ => return None,
        })
    }
}

impl ClaudeEvents {
    fn note_session(&mut self, event: &Value) {
        match event.get("session_id").and_then(Value::as_str) {
            Some(id) if valid_conversation_id(id) => self.session_id = Some(id.to_string()),
            Some(id) => tracing::warn!(
                session_id = %id.chars().take(80).collect::<String>(),
                "ignored a Claude session id that is not a plain token"
            ),
            None => {}
        }
    }

    fn render_assistant(&self, event: &Value) -> String {
        let mut out = String::new();
        let Some(content) = event.pointer("/message/content").and_then(Value::as_array) else {
            return out;
        };
        for item in content {
            match item.get("type").and_then(Value::as_str) {
                Some("text") => {
                    if let Some(t) = item.get("text").and_then(Value::as_str) {
                        if t.trim().is_empty() {
                            continue;
                        }
                        out.push_str(t);
                        if !t.ends_with('\n') {
                            out.push('\n');
                        }
                    }
                }
                Some("tool_use") => {
                    let name = item.get("name").and_then(Value::as_str).unwrap_or("tool");
                    let input = item.get("input").unwrap_or(&Value::Null);
                    out.push_str(&format!("▸ {}\n", tool_summary(name, input, &self.paths)));
                }
                // Thinking blocks and anything newer stay private.
                _ => {}
            }
        }
        out
    }
}

/// Input fields that say what a tool call is about, in order of preference,
/// and whether the field is a path (shown relative to the project).
const DETAIL_FIELDS: &[(&str, bool)] = &[
    ("file_path", true),
    ("notebook_path", true),
    ("command", false),
    ("pattern", false),
    ("url", false),
    ("query", false),
    ("description", false),
    ("path", true),
    ("skill", false),
];

/// "Edit src/main.rs", "Bash cargo test", "Grep TODO", "github.create_issue".
pub fn tool_summary(name: &str, input: &Value, paths: &PathShortener) -> String {
    // MCP tools are named mcp__{server}__{tool}.
    if let Some(rest) = name.strip_prefix("mcp__") {
        return match rest.split_once("__") {
            Some((server, tool)) if !server.is_empty() && !tool.is_empty() => {
                format!("{server}.{tool}")
            }
            _ => rest.to_string(),
        };
    }
    let detail = DETAIL_FIELDS.iter().find_map(|(key, is_path)| {
        let value = input.get(*key).and_then(Value::as_str)?;
        let value = if *is_path {
            paths.shorten(value)
        } else {
            value
        };
        let d = first_line(value, DETAIL_CHARS);
        (!d.is_empty()).then_some(d)
    });
    match detail {
        Some(d) => format!("{name} {d}"),
        None => name.to_string(),
    }
}

/// `user` events carry tool results back to the model; only failures are
/// worth a line.
fn render_tool_errors(event: &Value) -> String {
    let mut out = String::new();
    let Some(content) = event.pointer("/message/content").and_then(Value::as_array) else {
        return out;
    };
    for item in content {
        let failed = item.get("type").and_then(Value::as_str) == Some("tool_result")
            && item.get("is_error").and_then(Value::as_bool) == Some(true);
        if !failed {
            continue;
        }
        let text = match item.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        };
        let text = text
            .replace("<tool_use_error>", "")
            .replace("</tool_use_error>", "");
        let line = first_line(&text, TOOL_ERROR_CHARS);
        if line.is_empty() {
            out.push_str("  ✖ failed\n");
        } else {
            out.push_str(&format!("  ✖ {line}\n"));
        }
    }
    out
}

fn render_result(event: &Value) -> String {
    let secs = event
        .get("duration_ms")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        / 1000.0;
    let mut stats = format!("{secs:.1} s");
    if let Some(turns) = event.get("num_turns").and_then(Value::as_u64) {
        let s = if turns == 1 { "" } else { "s" };
        stats.push_str(&format!(" · {turns} turn{s}"));
    }
    if let Some(cost) = event.get("total_cost_usd").and_then(Value::as_f64) {
        stats.push_str(&format!(" · ${cost:.4}"));
    }
    let subtype = event.get("subtype").and_then(Value::as_str).unwrap_or("");
    let is_error = event
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || subtype.starts_with("error");
    if !is_error {
        // The result text repeats the last assistant message: not shown again.
        return format!("\n✔ done in {stats}\n");
    }
    let what = match subtype {
        "error_max_turns" => "stopped at the turn limit".to_string(),
        "error_max_budget_usd" => "stopped at the budget limit".to_string(),
        "error_during_execution" => "failed during execution".to_string(),
        "success" | "" => "failed".to_string(),
        other => format!("failed ({other})"),
    };
    let mut message = event
        .get("result")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("")
        .to_string();
    if message.is_empty()
        && let Some(errors) = event.get("errors").and_then(Value::as_array)
    {
        message = errors
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; ");
    }
    let mut out = format!("\n✖ {what} after {stats}\n");
    if !message.is_empty() {
        let cut: String = message.chars().take(RESULT_ERROR_CHARS).collect();
        out.push_str(cut.trim_end());
        if message.chars().count() > RESULT_ERROR_CHARS {
            out.push('…');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::text::test_support::{fixture, in_pieces};

    /// Feeds `input` in pieces of `size` bytes, cut anywhere (inside
    /// characters too: the pieces are re-joined at char boundaries).
    fn feed(input: &str, size: usize) -> (String, Option<String>) {
        let mut s = ClaudeStream::new(Path::new("/home/me/web"));
        let mut out = in_pieces(input, size, |piece| s.push(piece));
        out += &s.finish();
        (out, s.session_id().map(str::to_string))
    }

    #[test]
    fn a_recorded_session_renders_exactly_in_any_pieces() {
        let input = fixture("claude-session.jsonl");
        let want = fixture("claude-session.txt");
        for size in [1, 2, 7, 64, 1000, input.len()] {
            let (out, id) = feed(&input, size);
            assert_eq!(out, want, "pieces of {size}");
            assert_eq!(id.as_deref(), Some("3f6d1c2e-8a4b-4f7e-9c1d-2b5a6e7f8091"));
        }
    }

    #[test]
    fn the_result_reports_turns_and_cost_for_the_done() {
        let mut s = ClaudeStream::new(Path::new("/home/me/web"));
        assert_eq!(s.stats(), RunStats::default());
        s.push(&fixture("claude-session.jsonl"));
        s.finish();
        assert_eq!(
            s.stats(),
            RunStats {
                turns: Some(9),
                cost_usd: Usd::from_dollars(0.08734),
            }
        );
        // A result without them (or with a nonsense cost) reports none.
        s.push("{\"type\":\"result\",\"subtype\":\"success\",\"total_cost_usd\":-1}\n");
        assert_eq!(s.stats(), RunStats::default());
    }

    #[test]
    fn an_error_result_says_what_went_wrong() {
        let input = fixture("claude-error.jsonl");
        let want = fixture("claude-error.txt");
        for size in [3, input.len()] {
            let (out, id) = feed(&input, size);
            assert_eq!(out, want, "pieces of {size}");
            assert_eq!(id.as_deref(), Some("9b2e4c6a-1d3f-4a5b-8c7d-0e1f2a3b4c5d"));
        }
    }

    #[test]
    fn results_and_limits() {
        let (out, _) = feed(
            concat!(
                r#"{"type":"result","subtype":"error_max_turns","is_error":true,"duration_ms":61000,"num_turns":1,"total_cost_usd":0.5,"session_id":"s1"}"#,
                "\n",
                r#"{"type":"result","subtype":"success","is_error":true,"duration_ms":900,"result":"API Error: 529 overloaded\nretry later","session_id":"s2"}"#,
                "\n",
                r#"{"type":"result","subtype":"error_during_execution","is_error":true,"duration_ms":10,"errors":["boom","bang"]}"#,
            ),
            5,
        );
        assert_eq!(
            out,
            "\n✖ stopped at the turn limit after 61.0 s · 1 turn · $0.5000\n\
             \n✖ failed after 0.9 s\nAPI Error: 529 overloaded\nretry later\n\
             \n✖ failed during execution after 0.0 s\nboom; bang\n"
        );
    }

    #[test]
    fn tool_summaries() {
        let paths = PathShortener::new(Path::new("/p"));
        let s = |name: &str, input: Value| tool_summary(name, &input, &paths);
        assert_eq!(
            s("Edit", serde_json::json!({"file_path": "/p/src/main.rs"})),
            "Edit src/main.rs"
        );
        assert_eq!(
            s(
                "Bash",
                serde_json::json!({"command": "cargo test\n&& echo", "description": "Run tests"})
            ),
            "Bash cargo test…"
        );
        assert_eq!(
            s(
                "Grep",
                serde_json::json!({"pattern": "TODO", "path": "/p/src"})
            ),
            "Grep TODO"
        );
        assert_eq!(
            s("TodoWrite", serde_json::json!({"todos": []})),
            "TodoWrite"
        );
        assert_eq!(
            s(
                "mcp__github__create_issue",
                serde_json::json!({"title": "x"})
            ),
            "github.create_issue"
        );
        assert_eq!(s("mcp__odd", Value::Null), "odd");
        assert_eq!(
            s("WebSearch", serde_json::json!({"query": "tokio select"})),
            "WebSearch tokio select"
        );
        let long = "x".repeat(300);
        assert_eq!(
            s("Bash", serde_json::json!({ "command": long })),
            format!("Bash {}…", "x".repeat(120))
        );
    }

    #[test]
    fn unknown_and_broken_lines_come_through_raw() {
        let (out, id) = feed(
            concat!(
                "plain text\n",
                "{\"type\":\"brand_new\",\"x\":1}\n",
                "{\"no_type\":true}\n",
                "[1,2]\n",
                "{\"type\":\"assistant\",\"message\":\"not an object\"}\n",
                "{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"--evil\"}\n",
                "{broken json\n",
                "no newline at the end",
            ),
            4,
        );
        assert_eq!(
            out,
            "plain text\n{\"type\":\"brand_new\",\"x\":1}\n{\"no_type\":true}\n[1,2]\n\
             {broken json\nno newline at the end\n"
        );
        assert_eq!(id, None);
    }
}
