//! Claude Code's `--output-format stream-json` made readable.
//!
//! Each stdout line is a JSON event. Assistant text is passed on as is, each
//! tool use becomes one short line (`▸ Edit src/main.rs`), and the final
//! `result` becomes a summary line with duration and cost. Lines that are not
//! JSON, or events this code does not know, are passed through unchanged, so
//! a format change degrades to raw output rather than silence.

use serde_json::Value;

#[derive(Debug, Default)]
pub struct ClaudeStream {
    line: String,
}

impl ClaudeStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds decoded stdout text; returns the readable text of every
    /// complete line.
    pub fn push(&mut self, text: &str) -> String {
        let mut out = String::new();
        for ch in text.chars() {
            if ch == '\n' {
                let line = std::mem::take(&mut self.line);
                out.push_str(&render_line(&line));
            } else {
                self.line.push(ch);
            }
        }
        out
    }

    /// The last line, if the stream did not end with a newline.
    pub fn finish(&mut self) -> String {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            String::new()
        } else {
            render_line(&line)
        }
    }
}

fn render_line(line: &str) -> String {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return String::new();
    }
    let Ok(event) = serde_json::from_str::<Value>(trimmed) else {
        return format!("{line}\n");
    };
    match event.get("type").and_then(Value::as_str) {
        Some("assistant") => render_assistant(&event),
        Some("result") => render_result(&event),
        // Init and user (tool result) events are noise on a phone.
        Some("system") | Some("user") => String::new(),
        _ => format!("{line}\n"),
    }
}

fn render_assistant(event: &Value) -> String {
    let mut out = String::new();
    let Some(content) = event.pointer("/message/content").and_then(Value::as_array) else {
        return out;
    };
    for item in content {
        match item.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(t) = item.get("text").and_then(Value::as_str) {
                    out.push_str(t);
                    if !t.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
            Some("tool_use") => {
                let name = item.get("name").and_then(Value::as_str).unwrap_or("tool");
                let input = item.get("input").cloned().unwrap_or(Value::Null);
                out.push_str(&format!("▸ {}\n", tool_summary(name, &input)));
            }
            _ => {}
        }
    }
    out
}

/// "Edit src/main.rs", "Bash cargo test", "Grep TODO" …
pub fn tool_summary(name: &str, input: &Value) -> String {
    let detail = [
        "file_path",
        "path",
        "command",
        "pattern",
        "url",
        "description",
    ]
    .iter()
    .find_map(|k| input.get(*k).and_then(Value::as_str));
    match detail {
        Some(d) => {
            let d: String = d.lines().next().unwrap_or("").chars().take(120).collect();
            format!("{name} {d}")
        }
        None => name.to_string(),
    }
}

fn render_result(event: &Value) -> String {
    let secs = event
        .get("duration_ms")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        / 1000.0;
    let cost = event.get("total_cost_usd").and_then(Value::as_f64);
    let is_error = event
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut line = if is_error {
        format!("✖ error after {secs:.1} s")
    } else {
        format!("✔ finished in {secs:.1} s")
    };
    if let Some(c) = cost {
        line.push_str(&format!(", ${c:.4}"));
    }
    format!("\n{line}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_session() {
        let mut s = ClaudeStream::new();
        let input = concat!(
            r#"{"type":"system","subtype":"init","session_id":"x"}"#,
            "\n",
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"I'll fix it."}]}}"#,
            "\n",
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Edit","input":{"file_path":"src/main.rs","old_string":"a"}}]}}"#,
            "\n",
            r#"{"type":"user","message":{"content":[{"type":"tool_result"}]}}"#,
            "\n",
            r#"{"type":"result","subtype":"success","duration_ms":12300,"total_cost_usd":0.0123,"is_error":false}"#,
            "\n",
            "not json\n",
        );
        // Fed in awkward pieces.
        let mut out = String::new();
        for piece in input.as_bytes().chunks(7) {
            out += &s.push(std::str::from_utf8(piece).unwrap());
        }
        out += &s.finish();
        assert_eq!(
            out,
            "I'll fix it.\n▸ Edit src/main.rs\n\n✔ finished in 12.3 s, $0.0123\nnot json\n"
        );
    }
}
