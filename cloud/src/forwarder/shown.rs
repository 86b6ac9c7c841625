//! What a tool's approval message shows besides the tool and its summary:
//! ⚠️ and the reason when the daemon marks the use dangerous, the folder a
//! command runs in, and an edit's diff. The message stays within
//! Telegram's 4096 characters with room left for the verdict added to it
//! later; a diff too long for that is cut at a line end, and the whole
//! diff goes in a file (`edit-main.rs.diff`) sent just above the message.

use remoteagent_proto::events::ApprovalRequestPayload;

use super::page::{self, MAX_NAME_CHARS, cut_to};
use crate::telegram::{escape_html, render};

/// Longest reason of a dangerous use shown.
const MAX_DANGER_CHARS: usize = 300;
/// Longest working folder shown.
const MAX_CWD_CHARS: usize = 300;
/// Room kept free in the message for the verdict appended to it (a reason
/// of at most 300 characters and its wording).
const VERDICT_ROOM: usize = 400;

/// What the message says about the diff below its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiffNote<'a> {
    /// The diff is shown whole (or there is none).
    Whole,
    /// Cut; the whole diff is the file of this name, just above.
    Attached(&'a str),
    /// Cut, and sending the whole diff as a file failed.
    NotAttached,
}

/// The message of a tool's approval request.
pub(crate) fn tool_html(agent: &str, a: &ApprovalRequestPayload, note: DiffNote) -> String {
    let (head, tail) = head_and_tail(agent, a);
    let Some(diff) = a.diff.as_deref().filter(|d| !d.trim().is_empty()) else {
        return format!("{head}\n{tail}");
    };
    let note = match note {
        DiffNote::Whole => String::new(),
        DiffNote::Attached(name) => format!(
            "\nThe diff is cut here: the whole diff is in {} above.",
            escape_html(name)
        ),
        DiffNote::NotAttached => {
            "\nThe diff is cut here, and the whole diff could not be attached.".to_string()
        }
    };
    let (shown, _) = fit_diff(&head, &tail, diff);
    format!(
        "{head}\n<pre><code class=\"language-diff\">{}</code></pre>{note}\n{tail}",
        escape_html(&shown)
    )
}

/// Whether the diff of `a` is too long for its message (and goes whole in a
/// file).
pub(crate) fn diff_is_cut(agent: &str, a: &ApprovalRequestPayload) -> bool {
    let Some(diff) = a.diff.as_deref().filter(|d| !d.trim().is_empty()) else {
        return false;
    };
    let (head, tail) = head_and_tail(agent, a);
    fit_diff(&head, &tail, diff).1
}

/// The name of the file holding the whole diff: `edit-main.rs.diff`.
pub(crate) fn diff_file_name(a: &ApprovalRequestPayload) -> String {
    let tool = a.tool.trim().to_lowercase();
    let tool = if tool.chars().all(|c| c.is_ascii_alphanumeric()) && !tool.is_empty() {
        tool
    } else {
        "edit".to_string()
    };
    let file = remoteagent_proto::files::safe_file_name(a.summary.lines().next().unwrap_or(""));
    let file: String = file.chars().take(100).collect();
    if file.is_empty() {
        format!("{tool}.diff")
    } else {
        format!("{tool}-{file}.diff")
    }
}

/// The message without its diff: everything above it, and its last line
/// (the timeout).
fn head_and_tail(agent: &str, a: &ApprovalRequestPayload) -> (String, String) {
    let base = page::approval_html(agent, &a.tool, &a.summary, a.timeout_secs);
    // The timeout is always the last line of `approval_html`.
    let (mut head, tail) = match base.rsplit_once('\n') {
        Some((head, tail)) => (head.to_string(), tail.to_string()),
        None => (base.clone(), String::new()),
    };
    if let Some(reason) = a.danger.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        head = format!(
            "⚠️ <b>Dangerous:</b> {}\n{head}",
            escape_html(&cut_to(reason, MAX_DANGER_CHARS))
        );
    }
    if let Some(cwd) = a.cwd.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        if cwd == "." {
            head.push_str("\nin the project folder");
        } else {
            head.push_str(&format!(
                "\nin <code>{}</code>",
                escape_html(&cut_to(cwd, MAX_CWD_CHARS))
            ));
        }
    }
    (head, tail)
}

/// The part of `diff` that fits the message, and whether it was cut.
fn fit_diff(head: &str, tail: &str, diff: &str) -> (String, bool) {
    let used = visible(head) + visible(tail) + 2;
    // The longest note, so the cut never depends on which note is shown.
    let note = "\nThe diff is cut here, and the whole diff could not be attached.".len()
        + 2 * MAX_NAME_CHARS;
    let room = render::MAX_MESSAGE_CHARS.saturating_sub(used + VERDICT_ROOM);
    if render::visible_len(diff) <= room {
        return (diff.to_string(), false);
    }
    let room = room.saturating_sub(note + 2);
    let cut = render::fit_prefix(diff, room, 0, room);
    let mut shown = diff[..cut].to_string();
    if !shown.ends_with('\n') {
        shown.push('\n');
    }
    shown.push('…');
    (shown, true)
}

fn visible(html: &str) -> usize {
    render::visible_len(&render::html_to_text(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tool: &str, summary: &str) -> ApprovalRequestPayload {
        ApprovalRequestPayload {
            request_id: "r1".into(),
            tool: tool.into(),
            summary: summary.into(),
            timeout_secs: 300,
            ..Default::default()
        }
    }

    #[test]
    fn danger_comes_first_and_cwd_after_the_command() {
        let mut a = request("Bash", "git push --force");
        a.danger = Some("force-pushes with git".into());
        a.cwd = Some("sub/dir".into());
        let html = tool_html("hello", &a, DiffNote::Whole);
        assert!(
            html.starts_with("⚠️ <b>Dangerous:</b> force-pushes with git\n🔐 <b>hello</b> asks to run:\n<pre>git push --force</pre>\nin <code>sub/dir</code>\nNo answer in 5 min = denied."),
            "{html}"
        );
        a.cwd = Some(".".into());
        assert!(
            tool_html("hello", &a, DiffNote::Whole).contains("</pre>\nin the project folder\n")
        );
    }

    #[test]
    fn a_short_diff_is_shown_whole() {
        let mut a = request("Edit", "src/main.rs");
        a.diff = Some("--- a/src/main.rs\n+++ b/src/main.rs\n@@ -1 +1 @@\n-<a>\n+b\n".into());
        assert!(!diff_is_cut("hello", &a));
        let html = tool_html("hello", &a, DiffNote::Whole);
        assert!(
            html.contains("<pre><code class=\"language-diff\">--- a/src/main.rs\n+++ b/src/main.rs\n@@ -1 +1 @@\n-&lt;a&gt;\n+b\n</code></pre>\nNo answer"),
            "{html}"
        );
        assert_eq!(diff_file_name(&a), "edit-main.rs.diff");
    }

    #[test]
    fn a_long_diff_is_cut_to_leave_room_for_the_verdict() {
        let mut a = request("Write", "src/big.rs");
        a.danger = Some("x".repeat(1000));
        a.diff = Some((0..2000).map(|n| format!("+line {n} <&>\n")).collect());
        assert!(diff_is_cut("hello", &a));
        for note in [
            DiffNote::Attached("write-big.rs.diff"),
            DiffNote::NotAttached,
        ] {
            let html = tool_html(&"n".repeat(100), &a, note);
            let resolved = page::approval_resolved_html(&html, false, &"r".repeat(1000));
            let shown = render::html_to_text(&resolved);
            assert!(
                render::visible_len(&shown) <= render::MAX_MESSAGE_CHARS,
                "{}",
                shown.len()
            );
            assert!(shown.contains("+line 0 <&>\n"));
            assert!(shown.contains("\n…\nThe diff is cut here"), "{shown}");
        }
        assert_eq!(diff_file_name(&a), "write-big.rs.diff");
    }
}
