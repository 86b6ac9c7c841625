//! What a session looks like in Telegram: the current page of output, the
//! placeholder, the Stop button, notice and status lines.

use remoteagent_proto::SessionId;
use remoteagent_proto::elapsed::elapsed;
use remoteagent_proto::events::{DonePayload, DoneStatus, StoppedBy, Usd};

use crate::telegram::{InlineButton, InlineKeyboard, escape_html, render};

/// Longest notice, approval or status message shown, in characters; longer
/// ones are cut so that such a line always fits on a page of its own.
const MAX_LINE_CHARS: usize = 1000;

/// Longest tool name and summary of an approval request shown, and longest
/// reason of its verdict: together they stay far below a message's 4096
/// characters, whatever the daemon sends.
const MAX_TOOL_CHARS: usize = 64;
const MAX_SUMMARY_CHARS: usize = 3000;
const MAX_REASON_CHARS: usize = 300;

/// Longest agent name shown in a message of its own (an approval request,
/// the ping).
pub(super) const MAX_NAME_CHARS: usize = 64;

/// Telegram's limit on `callback_data`, in bytes.
pub(super) const MAX_CALLBACK_DATA: usize = 64;

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
    cut_to(text, MAX_LINE_CHARS)
}

/// `text` cut to at most `max` units (see [`render::visible_len`]), ending
/// with `…` if cut.
pub(super) fn cut_to(text: &str, max: usize) -> String {
    if render::visible_len(text) <= max {
        return text.to_string();
    }
    let mut s = String::new();
    let mut units = 0;
    for ch in text.chars() {
        if units + ch.len_utf16() + 1 > max {
            break;
        }
        units += ch.len_utf16();
        s.push(ch);
    }
    s.push('…');
    s
}

/// Whether `html` shows anything: Telegram turns control characters into
/// spaces and refuses a text that is empty once whitespace is trimmed.
pub(super) fn is_visible(html: &str) -> bool {
    render::html_to_text(html)
        .chars()
        .any(|c| !c.is_whitespace() && !c.is_control())
}

/// Checks a page against Telegram's rules on a message's text before it is
/// sent: visible, and at most `limit` units after entity parsing.
pub(super) fn check_fits(html: &str, limit: usize) -> Result<(), String> {
    let text = render::html_to_text(html);
    if !is_visible(html) {
        return Err("empty page".into());
    }
    let len = render::visible_len(&text);
    if len > limit {
        return Err(format!("{len} units on a page of {limit}"));
    }
    Ok(())
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

    /// An approval request's verdict for which no message is known (the
    /// request was never shown, or forgotten).
    pub fn unknown_verdict(request_id: &str, allow: bool, reason: &str) -> Self {
        Line::new(
            "",
            &format!("🔐 request {request_id}: {}", verdict_text(allow, reason)),
            Some("i"),
        )
    }

    /// Ends the last live page once the page budget is spent.
    pub fn overflow() -> Self {
        Line::new(
            "",
            "… output continues: the whole output will be attached as a file when the run ends",
            Some("i"),
        )
    }

    /// Chunks that never reached the forwarder.
    pub fn lost(chunks: u64) -> Self {
        Line::new("", &lost_text(chunks), None)
    }

    /// Output kept out of the stream past the session's byte budget.
    pub fn withheld(bytes: u64, agent_name: &str) -> Self {
        Line::new(
            "",
            &format!(
                "⚠️ {} more output is not shown here (past this run's limit in Redis): it is all in the log on the computer: remoteagentctl logs {}",
                size_text(bytes),
                cut_to(agent_name, 64)
            ),
            None,
        )
    }

    /// A status line followed by the run's mode (`✅ done in 3.0 s · plan
    /// mode`); as it is without one. `mode` is what the daemon sent, cut
    /// short.
    pub fn in_mode(self, mode: &str) -> Line {
        let mode = cut_to(mode.trim(), 16);
        if mode.is_empty() {
            return self;
        }
        let tail = format!(" · {mode} mode");
        Line {
            chars: self.chars + render::visible_len(&tail),
            html: format!("{}{}", self.html, escape_html(&tail)),
        }
    }

    /// This line, cut to at most `max` units (a page smaller than a line).
    pub fn fit(self, max: usize) -> Line {
        if self.chars <= max {
            return self;
        }
        let text = cut_to(&render::html_to_text(&self.html), max);
        Line {
            chars: render::visible_len(&text),
            html: escape_html(&text),
        }
    }

    /// Lines one under the other.
    pub fn join(lines: &[Line]) -> Line {
        Line {
            html: lines
                .iter()
                .map(|l| l.html.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            chars: lines.iter().map(|l| l.chars).sum::<usize>() + lines.len().saturating_sub(1),
        }
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

/// `⚠️ 3 chunks of output were lost`.
pub(super) fn lost_text(chunks: u64) -> String {
    if chunks == 1 {
        "⚠️ 1 chunk of output was lost".to_string()
    } else {
        format!("⚠️ {chunks} chunks of output were lost")
    }
}

/// `✅ approved`, `⛔ denied — no answer in 300 s`, `✅ approved from your
/// computer` (plain text). The reason is left out where it only repeats the
/// verdict, and stands alone where it starts with it (who answered).
fn verdict_text(allow: bool, reason: &str) -> String {
    let reason = cut_to(reason.trim(), MAX_REASON_CHARS);
    let (mark, word) = if allow {
        ("✅", "approved")
    } else {
        ("⛔", "denied")
    };
    let says_it = reason
        .get(..word.len() + 1)
        .is_some_and(|start| start.eq_ignore_ascii_case(&format!("{word} ")));
    // Questions and plans say what happened in their own words
    // (`answered from the phone: Blue`, `plan rejected from the phone`).
    let own_words = ["answered ", "declined ", "plan "]
        .iter()
        .any(|w| reason.starts_with(w));
    if reason.starts_with("revision ") {
        format!("✎ {reason}")
    } else if reason.is_empty() || reason.eq_ignore_ascii_case(word) {
        format!("{mark} {word}")
    } else if says_it || own_words {
        format!("{mark} {reason}")
    } else {
        format!("{mark} {word} — {reason}")
    }
}

/// The message asking the user to approve a tool use, naming the agent
/// that asks (one may drive several): `🔐 <b>hello</b> asks to run:` /
/// `<pre>cargo test</pre>` / the deadline; for other tools `🔐 <b>hello</b>
/// asks to use <b>Edit</b>:`.
pub(crate) fn approval_html(agent: &str, tool: &str, summary: &str, timeout_secs: u64) -> String {
    let agent = escape_html(&cut_to(agent.trim(), MAX_NAME_CHARS));
    let tool = cut_to(tool.trim(), MAX_TOOL_CHARS);
    let shell = ["bash", "shell", "sh", "command", "exec"].contains(&tool.to_lowercase().as_str());
    let mut html = if shell {
        format!("🔐 <b>{agent}</b> asks to run:")
    } else if tool.is_empty() {
        format!("🔐 <b>{agent}</b> asks to use a tool:")
    } else {
        format!(
            "🔐 <b>{agent}</b> asks to use <b>{}</b>:",
            escape_html(&tool)
        )
    };
    let summary = cut_to(summary.trim_end(), MAX_SUMMARY_CHARS);
    if !summary.trim().is_empty() {
        html.push_str(&format!("\n<pre>{}</pre>", escape_html(&summary)));
    }
    if timeout_secs > 0 {
        html.push_str(&format!(
            "\nNo answer in {} = denied.",
            approx_duration(timeout_secs)
        ));
    } else {
        html.push_str("\nNo answer = denied.");
    }
    html
}

/// The ping: a session's end as a new message, naming the agent, so that
/// the phone notifies (Telegram does not on edits). `✅ <b>hello</b>
/// finished in 48s · 9 turns · $0.09`, `❌ <b>hello</b> failed: exit 1`,
/// `⏹ <b>hello</b> stopped by you (from the phone)`. `None` for a prompt
/// that never ran (rejected: its answer came at once, nobody waits).
pub(super) fn ping_html(agent: &str, done: &DonePayload) -> Option<String> {
    let name = format!(
        "<b>{}</b>",
        escape_html(&cut_to(agent.trim(), MAX_NAME_CHARS))
    );
    let reason = |text: &str| escape_html(&cut_to(text.trim(), MAX_REASON_CHARS));
    let message = done.message.as_deref().unwrap_or("").trim();
    Some(match done.status {
        DoneStatus::Ok => {
            let mut html = format!("✅ {name} finished in {}", elapsed(done.duration_ms / 1000));
            if let Some(turns) = done.turns {
                let s = if turns == 1 { "" } else { "s" };
                html.push_str(&format!(" · {turns} turn{s}"));
            }
            if let Some(cost) = done.cost_usd {
                html.push_str(&format!(" · {}", cost_text(cost)));
            }
            html
        }
        DoneStatus::Failed | DoneStatus::Error => {
            let why = match (message.is_empty(), done.exit_code) {
                (false, _) => reason(message),
                (true, Some(code)) => format!("exit {code}"),
                (true, None) => String::new(),
            };
            if why.is_empty() {
                format!("❌ {name} failed")
            } else {
                format!("❌ {name} failed: {why}")
            }
        }
        DoneStatus::Aborted => match done.stopped_by {
            Some(StoppedBy::Phone) => format!("⏹ {name} stopped by you (from the phone)"),
            Some(StoppedBy::Computer) => format!("⏹ {name} stopped by you (from your computer)"),
            Some(StoppedBy::Shutdown) => format!("⏹ {name} stopped (daemon shut down)"),
            // Who stopped it is not known (an older daemon, or the cloud
            // closed the stream, as when the agent was unpaired).
            None if message.is_empty() || message.eq_ignore_ascii_case("aborted") => {
                format!("⏹ {name} stopped")
            }
            None => format!("⏹ {name} stopped: {}", reason(message)),
        },
        DoneStatus::Rejected => return None,
    })
}

/// `$0.09`; below a cent `< $0.01` (not `$0.00`, which reads as free).
fn cost_text(cost: Usd) -> String {
    let dollars = cost.dollars();
    if dollars > 0.0 && dollars < 0.005 {
        "&lt; $0.01".to_string()
    } else {
        format!("${dollars:.2}")
    }
}

/// An approval message with its verdict (the buttons are gone).
pub(crate) fn approval_resolved_html(html: &str, allow: bool, reason: &str) -> String {
    format!("{html}\n{}", escape_html(&verdict_text(allow, reason)))
}

/// An approval message right after a button press, until the agent's
/// answer arrives.
pub(crate) fn approval_pending_html(html: &str, allow: bool) -> String {
    let verdict = if allow { "approved" } else { "denied" };
    format!("{html}\n⏳ {verdict}, telling the agent…")
}

/// [✅ Approve | ⛔ Deny] for a request; `None` if its callback data would
/// not fit Telegram's 64 bytes or could not be parsed back (an invalid id).
pub(super) fn approval_keyboard(session: &SessionId, request_id: &str) -> Option<InlineKeyboard> {
    if !remoteagent_proto::events::valid_request_id(request_id) {
        return None;
    }
    let approve = format!("approve:{session}:{request_id}");
    let deny = format!("deny:{session}:{request_id}");
    if approve.len() > MAX_CALLBACK_DATA || deny.len() > MAX_CALLBACK_DATA {
        return None;
    }
    // The page above the request gives up its Stop button while the request
    // waits, so the request carries one: the run can still be stopped from
    // the newest message.
    Some(InlineKeyboard {
        inline_keyboard: vec![
            vec![
                InlineButton {
                    text: "✅ Approve".into(),
                    callback_data: approve,
                },
                InlineButton {
                    text: "⛔ Deny".into(),
                    callback_data: deny,
                },
            ],
            stop_keyboard(session).inline_keyboard.concat(),
        ],
    })
}

/// `5 min`, `90 s`, `2 h`.
pub(super) fn approx_duration(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// Telegram's limit on a caption, in units after entity parsing.
const MAX_CAPTION_CHARS: usize = 1024;

/// The caption of the output file: what is missing, then the status
/// line(s) `status_html`, last as everywhere. Kept within Telegram's 1,024
/// units: a status too long for that is cut (it is also in the session's
/// row and log).
pub(super) fn file_caption(status_html: &str, lost: u64, cut: Option<(u64, u64)>) -> String {
    let mut extra = String::new();
    if lost > 0 {
        extra.push_str(&lost_text(lost));
        extra.push('\n');
    }
    if let Some((sent, total)) = cut {
        extra.push_str(&format!(
            "✂️ Only the first {} of {} are attached (Telegram's upload limit).\n",
            size_text(sent),
            size_text(total)
        ));
    }
    let caption = format!("{}{status_html}", escape_html(&extra));
    if render::visible_len(&render::html_to_text(&caption)) <= MAX_CAPTION_CHARS {
        return caption;
    }
    let room = MAX_CAPTION_CHARS.saturating_sub(render::visible_len(&extra));
    let status = cut_to(&render::html_to_text(status_html), room);
    format!("{}{}", escape_html(&extra), escape_html(&status))
}

/// `50 MB`, `73.2 MB`, `12 kB`, `900 bytes` (decimal units, as Telegram
/// states its limits).
pub(super) fn size_text(bytes: u64) -> String {
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let (value, unit) = if bytes < 1_000_000 {
        (bytes as f64 / 1000.0, "kB")
    } else {
        (bytes as f64 / 1_000_000.0, "MB")
    };
    if (value - value.round()).abs() < 0.05 {
        format!("{} {unit}", value.round() as u64)
    } else {
        format!("{value:.1} {unit}")
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
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        }
    }

    #[test]
    fn the_status_line_shows_the_mode() {
        let status = Line::status(&done(DoneStatus::Ok, Some(0), None));
        let plain = status.clone();
        let with = status.in_mode("plan");
        assert_eq!(with.html, format!("{} · plan mode", plain.html));
        assert_eq!(
            with.chars,
            render::visible_len(&render::html_to_text(&with.html))
        );
        assert_eq!(plain.clone().in_mode(""), plain);
        // Whatever a daemon sends is escaped.
        let odd = Line::status(&done(DoneStatus::Ok, Some(0), None)).in_mode("<b>");
        assert!(odd.html.ends_with("· &lt;b&gt; mode"), "{}", odd.html);
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
    fn pings_name_the_agent_and_say_how_the_run_ended() {
        let mut ok = done(DoneStatus::Ok, Some(0), None);
        ok.duration_ms = 48_213;
        assert_eq!(
            ping_html("hello", &ok).unwrap(),
            "✅ <b>hello</b> finished in 48s"
        );
        ok.turns = Some(9);
        ok.cost_usd = Usd::from_dollars(0.08734);
        assert_eq!(
            ping_html("hello", &ok).unwrap(),
            "✅ <b>hello</b> finished in 48s · 9 turns · $0.09"
        );
        ok.turns = Some(1);
        ok.cost_usd = Usd::from_dollars(0.0004);
        ok.duration_ms = 65_000;
        assert_eq!(
            render::html_to_text(&ping_html("a&b", &ok).unwrap()),
            "✅ a&b finished in 1m 5s · 1 turn · < $0.01"
        );
        let ping = |d: &DonePayload| ping_html("hello", d).unwrap();
        assert_eq!(
            ping(&done(DoneStatus::Failed, Some(1), None)),
            "❌ <b>hello</b> failed: exit 1"
        );
        assert_eq!(
            ping(&done(DoneStatus::Failed, None, Some("killed by signal 9"))),
            "❌ <b>hello</b> failed: killed by signal 9"
        );
        assert_eq!(
            ping(&done(DoneStatus::Error, None, Some("no <such> program"))),
            "❌ <b>hello</b> failed: no &lt;such&gt; program"
        );
        assert_eq!(
            ping(&done(DoneStatus::Error, None, None)),
            "❌ <b>hello</b> failed"
        );
        let mut stopped = done(DoneStatus::Aborted, None, Some("aborted"));
        for (by, text) in [
            (
                Some(StoppedBy::Phone),
                "⏹ <b>hello</b> stopped by you (from the phone)",
            ),
            (
                Some(StoppedBy::Computer),
                "⏹ <b>hello</b> stopped by you (from your computer)",
            ),
            (
                Some(StoppedBy::Shutdown),
                "⏹ <b>hello</b> stopped (daemon shut down)",
            ),
            (None, "⏹ <b>hello</b> stopped"),
        ] {
            stopped.stopped_by = by;
            assert_eq!(ping(&stopped), text);
        }
        assert_eq!(
            ping(&done(
                DoneStatus::Aborted,
                None,
                Some("the agent was unpaired")
            )),
            "⏹ <b>hello</b> stopped: the agent was unpaired"
        );
        assert_eq!(
            ping_html("hello", &done(DoneStatus::Rejected, None, Some("busy"))),
            None
        );
        // Whatever the name and reason, the ping fits a message.
        let long = ping_html(
            &"n".repeat(5000),
            &done(DoneStatus::Error, None, Some(&"🚀".repeat(5000))),
        )
        .unwrap();
        assert!(check_fits(&long, 1000).is_ok(), "{long}");
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
    fn approvals_render_escaped_with_fitting_buttons() {
        let html = approval_html("hello", "Bash", "cargo test <all> && rm x", 300);
        assert_eq!(
            html,
            "🔐 <b>hello</b> asks to run:\n<pre>cargo test &lt;all&gt; &amp;&amp; rm x</pre>\nNo answer in 5 min = denied."
        );
        assert_eq!(
            approval_html("a<b", "Edit", "src/main.rs", 60),
            "🔐 <b>a&lt;b</b> asks to use <b>Edit</b>:\n<pre>src/main.rs</pre>\nNo answer in 1 min = denied."
        );
        assert!(
            approval_html("hello", " ", "", 0).starts_with("🔐 <b>hello</b> asks to use a tool:")
        );
        let long = approval_html(&"n".repeat(500), &"T".repeat(500), &"é".repeat(10_000), 0);
        assert!(render::visible_len(&long) < 3200, "{}", long.len());
        assert!(long.ends_with("…</pre>\nNo answer = denied."));
        assert_eq!(
            approval_resolved_html("x", false, "no answer in 300 s"),
            "x\n⛔ denied — no answer in 300 s"
        );
        assert_eq!(
            approval_resolved_html("x", true, "approved"),
            "x\n✅ approved"
        );
        assert_eq!(
            approval_resolved_html("x", true, "approved from your computer"),
            "x\n✅ approved from your computer"
        );
        assert_eq!(
            approval_resolved_html("x", false, "denied from your computer: use <make>"),
            "x\n⛔ denied from your computer: use &lt;make&gt;"
        );
        assert_eq!(
            approval_resolved_html("x", false, "denied from the phone"),
            "x\n⛔ denied from the phone"
        );
        assert_eq!(
            approval_resolved_html("x", false, "<b>"),
            "x\n⛔ denied — &lt;b&gt;"
        );
        assert_eq!(
            approval_resolved_html("x", true, "answered from the phone: <Blue>"),
            "x\n✅ answered from the phone: &lt;Blue&gt;"
        );
        assert_eq!(
            approval_resolved_html("x", false, "plan rejected from the phone"),
            "x\n⛔ plan rejected from the phone"
        );
        assert_eq!(
            approval_resolved_html("x", false, "revision asked from the phone: smaller"),
            "x\n✎ revision asked from the phone: smaller"
        );
        assert_eq!(
            approval_pending_html("x", true),
            "x\n⏳ approved, telling the agent…"
        );

        let sid = SessionId::generate();
        let k = approval_keyboard(&sid, "r-1").unwrap();
        let row = &k.inline_keyboard[0];
        assert_eq!(row.len(), 2);
        assert_eq!(row[0].callback_data, format!("approve:{sid}:r-1"));
        assert_eq!(row[1].callback_data, format!("deny:{sid}:r-1"));
        assert!(approval_keyboard(&sid, "a:b").is_none());
        assert!(approval_keyboard(&sid, "").is_none());
        let long_sid = SessionId::parse("s".repeat(60)).unwrap();
        assert!(approval_keyboard(&long_sid, "r1").is_none());
    }

    #[test]
    fn captions_say_what_is_missing() {
        let status = Line::status(&done(DoneStatus::Ok, Some(0), None));
        assert_eq!(file_caption(&status.html, 0, None), "✅ done in 12.3 s");
        assert_eq!(
            file_caption(&status.html, 3, Some((50_000_000, 73_210_000))),
            "⚠️ 3 chunks of output were lost\n✂️ Only the first 50 MB of 73.2 MB are attached (Telegram's upload limit).\n✅ done in 12.3 s"
        );
        assert_eq!(Line::lost(1).html, "⚠️ 1 chunk of output was lost");
        assert_eq!(size_text(999), "999 bytes");
        assert_eq!(size_text(1500), "1.5 kB");
        assert_eq!(size_text(50_000_000), "50 MB");
        let long = Line::status(&done(DoneStatus::Error, None, Some(&"🚀".repeat(2000))));
        let caption = file_caption(&long.html, 3, Some((50_000_000, 73_210_000)));
        let shown = render::html_to_text(&caption);
        assert!(render::visible_len(&shown) <= MAX_CAPTION_CHARS);
        assert!(shown.starts_with("⚠️ 3 chunks"), "{shown}");
        assert!(
            shown.contains("(Telegram's upload limit).\n❌ error: 🚀"),
            "{shown}"
        );
    }

    #[test]
    fn lines_count_utf16_units_and_pages_are_checked() {
        assert_eq!(Line::notice("🚀").chars, 2);
        let long = Line::notice(&"🚀".repeat(3000));
        assert!(long.chars <= MAX_LINE_CHARS, "{}", long.chars);
        assert!(!is_visible("\n"));
        assert!(!is_visible("<i> </i>"));
        assert!(is_visible("&lt;"));
        assert!(check_fits(&"🚀".repeat(2048), 4096).is_ok());
        assert!(check_fits(&"🚀".repeat(2049), 4096).is_err());
        assert!(check_fits(" \n ", 4096).is_err());
    }

    #[test]
    fn placeholder_escapes_the_agent_name() {
        assert_eq!(placeholder("a<b"), "⏳ <b>a&lt;b</b> is working…");
        let k = stop_keyboard(&SessionId::parse("s1").unwrap());
        assert_eq!(k.inline_keyboard[0][0].callback_data, "stop:s1");
    }
}
