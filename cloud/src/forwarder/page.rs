//! What a session looks like in Telegram: the current page of output, the
//! placeholder, the Stop button, notice and status lines.

use remoteagent_proto::SessionId;
use remoteagent_proto::events::{DonePayload, DoneStatus};

use crate::telegram::{InlineKeyboard, escape_html, render};

/// Longest notice, approval or status message shown, in characters; longer
/// ones are cut so that such a line always fits on a page of its own.
const MAX_LINE_CHARS: usize = 1000;

/// The message currently being filled. Earlier pages are finished and
/// forgotten, so a session's memory is bounded by one page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Page {
    /// The Telegram message showing this page; 0 while not yet sent.
    pub message: i64,
    /// The page's HTML.
    pub html: String,
    /// Characters the user sees (Telegram's measure of the 4096 limit).
    pub chars: usize,
}

impl Page {
    pub fn room(&self, limit: usize) -> usize {
        limit.saturating_sub(self.chars)
    }

    pub fn is_empty(&self) -> bool {
        self.chars == 0
    }

    /// Appends runner output (plain text, escaped here).
    pub fn push_text(&mut self, text: &str) {
        self.html.push_str(&escape_html(text));
        self.chars += render::visible_len(text);
    }

    /// Appends prepared HTML whose visible length is `chars`.
    pub fn push_html(&mut self, html: &str, chars: usize) {
        self.html.push_str(html);
        self.chars += chars;
    }

    pub fn ends_with_newline(&self) -> bool {
        self.html.is_empty() || self.html.ends_with('\n')
    }
}

/// A line that is not runner output: its HTML and visible length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    pub html: String,
    pub chars: usize,
}

fn cut(text: &str) -> String {
    if render::visible_len(text) <= MAX_LINE_CHARS {
        return text.to_string();
    }
    let mut s: String = text.chars().take(MAX_LINE_CHARS - 1).collect();
    s.push('…');
    s
}

impl Line {
    /// `prefix` (plain) followed by `text` (plain) wrapped in `tag` if any.
    fn new(prefix: &str, text: &str, tag: Option<&str>) -> Self {
        let text = cut(text);
        let body = escape_html(&text);
        let html = match tag {
            Some(t) => format!("{}<{t}>{body}</{t}>", escape_html(prefix)),
            None => format!("{}{body}", escape_html(prefix)),
        };
        Line {
            chars: render::visible_len(prefix) + render::visible_len(&text),
            html,
        }
    }

    pub fn notice(text: &str) -> Self {
        Line::new("", text, Some("i"))
    }

    pub fn approval(tool: &str, summary: &str) -> Self {
        Line::new(
            "🔐 approval requested: ",
            &format!("{tool}: {summary}"),
            None,
        )
    }

    pub fn status(done: &DonePayload) -> Self {
        let message = done.message.as_deref().unwrap_or("").trim();
        let text = match done.status {
            DoneStatus::Ok => format!("✅ done in {}", duration(done.duration_ms)),
            DoneStatus::Aborted => "⏹ aborted".to_string(),
            DoneStatus::Failed => match done.exit_code {
                Some(code) => format!("❌ failed (exit {code})"),
                None => "❌ failed".to_string(),
            },
            DoneStatus::Error if message.is_empty() => "❌ error".to_string(),
            DoneStatus::Error => format!("❌ error: {message}"),
            DoneStatus::Rejected if message.is_empty() => "⚠️ rejected".to_string(),
            DoneStatus::Rejected => format!("⚠️ rejected: {message}"),
        };
        Line::new("", &text, None)
    }
}

/// `12.3 s`, `2 min 5 s`.
pub(super) fn duration(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        let secs = ms / 1000;
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

/// The first message of a session, shown until output arrives.
pub(super) fn placeholder(agent_name: &str) -> String {
    format!("⏳ <b>{}</b> is working…", escape_html(agent_name))
}

/// The Stop button under the page of a running session.
pub(super) fn stop_keyboard(session: &SessionId) -> InlineKeyboard {
    InlineKeyboard::single("⏹ Stop", format!("stop:{session}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(status: DoneStatus, exit_code: Option<i32>, message: Option<&str>) -> DonePayload {
        DonePayload {
            status,
            exit_code,
            duration_ms: 12_345,
            message: message.map(str::to_string),
            chunks: 0,
        }
    }

    #[test]
    fn statuses_render() {
        assert_eq!(
            Line::status(&done(DoneStatus::Ok, Some(0), None)).html,
            "✅ done in 12.3 s"
        );
        assert_eq!(
            Line::status(&done(DoneStatus::Aborted, None, None)).html,
            "⏹ aborted"
        );
        assert_eq!(
            Line::status(&done(DoneStatus::Failed, Some(1), None)).html,
            "❌ failed (exit 1)"
        );
        assert_eq!(
            Line::status(&done(DoneStatus::Rejected, None, Some("agent <busy>"))).html,
            "⚠️ rejected: agent &lt;busy&gt;"
        );
        assert_eq!(
            Line::status(&done(DoneStatus::Error, None, Some("no such file"))).html,
            "❌ error: no such file"
        );
        assert_eq!(duration(125_000), "2 min 5 s");
    }

    #[test]
    fn lines_count_visible_characters() {
        let n = Line::notice("a<b");
        assert_eq!(n.html, "<i>a&lt;b</i>");
        assert_eq!(n.chars, 3);
        let long = Line::notice(&"é".repeat(5000));
        assert_eq!(long.chars, MAX_LINE_CHARS);
    }

    #[test]
    fn placeholder_escapes_the_agent_name() {
        assert_eq!(placeholder("a<b"), "⏳ <b>a&lt;b</b> is working…");
        let k = stop_keyboard(&SessionId::parse("s1").unwrap());
        assert_eq!(k.inline_keyboard[0][0].callback_data, "stop:s1");
    }
}
