//! What the answers to a diff card's buttons look like: the diff in a
//! `<pre>` (escaped, cut to fit one message), the undo, the commit's
//! proposal and outcome, and failures, in plain words.

use remoteagent_proto::SessionId;
use remoteagent_proto::checkpoints::{CARD_FILES, ChangedFile};
use remoteagent_proto::text::plural::count;

use crate::checkpoint_card::{Press, file_line, shown_path};
use crate::telegram::render::{html_to_text, visible_len};
use crate::telegram::{InlineButton, InlineKeyboard, MAX_MESSAGE_CHARS, escape_html};

/// What a button asked of the daemon, for the words of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    Diff,
    Undo,
    /// A message proposed for a commit (`branch`: on a new branch).
    Propose {
        branch: bool,
    },
    Commit {
        branch: bool,
    },
}

impl Asked {
    /// `Diff`, as the silence of a daemon names it.
    pub fn button(self) -> &'static str {
        match self {
            Asked::Diff => "🔍 Diff",
            Asked::Undo => "↩️ Undo",
            Asked::Propose { branch: false } | Asked::Commit { branch: false } => "✅ Commit",
            Asked::Propose { branch: true } | Asked::Commit { branch: true } => "🌿 Branch",
        }
    }

    /// What the daemon could not do: "show the diff".
    fn verb(self) -> &'static str {
        match self {
            Asked::Diff => "show the diff",
            Asked::Undo => "undo the run",
            Asked::Propose { .. } => "propose a commit message",
            Asked::Commit { branch: false } => "commit",
            Asked::Commit { branch: true } => "commit on a new branch",
        }
    }
}

/// Longest commit message shown in a proposal (a longer one is shown cut
/// and committed whole).
const SHOWN_MESSAGE_CHARS: usize = 3_000;

/// The diff (or one file's) as a message: a header, the diff in a
/// `<pre>`, escaped and cut so that the message stays within Telegram's
/// 4,096 characters, and what became of the rest.
pub(super) fn diff_html(
    agent_name: &str,
    files: &[ChangedFile],
    file: Option<u64>,
    diff: &str,
    truncated: bool,
) -> String {
    let name = escape_html(agent_name);
    let header = match file.and_then(|i| Some((i, files.get(usize::try_from(i).ok()?)?))) {
        Some((i, f)) => format!(
            "🔍 <b>{name}</b>: file {} of {}\n{}",
            i + 1,
            files.len(),
            file_line(f)
        ),
        None => format!(
            "🔍 <b>{name}</b>: the diff of {}",
            count(files.len() as u64, "file", "files")
        ),
    };
    const SENT_AS_FILES: &str =
        "<i>✂️ Cut here: the whole diff follows as a .diff file and a .html page.</i>";
    const CUT_TO_FIT: &str = "<i>✂️ Cut to fit one message.</i>";
    if diff.trim().is_empty() {
        return format!("{header}\n<i>No text to show (binary files or modes only).</i>");
    }
    // Two line breaks around the `<pre>`, and room for the longest footer.
    let room = MAX_MESSAGE_CHARS
        .saturating_sub(visible_len(&html_to_text(&header)))
        .saturating_sub(visible_len(&html_to_text(SENT_AS_FILES)))
        .saturating_sub(2);
    let (shown, cut) = cut_to(diff, room);
    let footer = if truncated {
        Some(SENT_AS_FILES)
    } else if cut {
        Some(CUT_TO_FIT)
    } else {
        None
    };
    let mut html = format!(
        "{header}\n<pre><code class=\"language-diff\">{}</code></pre>",
        escape_html(shown)
    );
    if let Some(footer) = footer {
        html.push('\n');
        html.push_str(footer);
    }
    html
}

/// The longest start of `text` of at most `room` UTF-16 units, ending at a
/// line break when one is in its second half; whether it was cut.
fn cut_to(text: &str, room: usize) -> (&str, bool) {
    let mut units = 0;
    for (i, ch) in text.char_indices() {
        units += ch.len_utf16();
        if units > room {
            let head = &text[..i];
            let at = match head.rfind('\n') {
                Some(n) if n >= i / 2 => n,
                _ => i,
            };
            return (&text[..at], true);
        }
    }
    (text, false)
}

/// [▶ Next file] under a diff, while there is a next file.
pub(super) fn next_keyboard(
    run: &SessionId,
    files: usize,
    file: Option<u64>,
) -> Option<InlineKeyboard> {
    let next = file.map_or(0, |f| f + 1);
    if files < 2 || next >= files as u64 {
        return None;
    }
    let data = Press::File(next).data(run)?;
    Some(InlineKeyboard::single("▶ Next file", data))
}

/// A list of paths, at most [`CARD_FILES`], the rest counted.
fn paths(paths: &[String]) -> String {
    let mut out = String::new();
    for p in paths.iter().take(CARD_FILES) {
        out.push_str(&format!("\n• <code>{}</code>", escape_html(&shown_path(p))));
    }
    if paths.len() > CARD_FILES {
        out.push_str(&format!("\nand {} more", paths.len() - CARD_FILES));
    }
    out
}

pub(super) fn undone_html(agent_name: &str, restored: &[String]) -> String {
    let name = escape_html(agent_name);
    if restored.is_empty() {
        return format!(
            "↩️ <b>{name}</b> had nothing to restore: the files are as they were before the run."
        );
    }
    format!(
        "↩️ <b>{name}</b> restored {} to how they were before the run:{}",
        count(restored.len() as u64, "file", "files"),
        paths(restored)
    )
}

pub(super) fn undo_refused_html(agent_name: &str, changed: &[String]) -> String {
    format!(
        "↩️ <b>{}</b> did not undo: {} changed again after the run:{}\n\n\
         ↩️ Undo anyway puts them back as they were before the run, losing those later edits.",
        escape_html(agent_name),
        count(changed.len() as u64, "file", "files"),
        paths(changed)
    )
}

pub(super) fn undo_anyway_keyboard(run: &SessionId) -> Option<InlineKeyboard> {
    let data = Press::UndoAnyway.data(run)?;
    Some(InlineKeyboard::single("↩️ Undo anyway", data))
}

pub(super) fn proposal_html(agent_name: &str, message: &str, branch: bool) -> String {
    let name = escape_html(agent_name);
    let what = if branch {
        format!(
            "🌿 Commit the run's changes in <b>{name}</b>'s project on a new branch with this message?"
        )
    } else {
        format!(
            "✅ Commit the run's changes on the current branch of <b>{name}</b>'s project with this message?"
        )
    };
    let shown: String = message.chars().take(SHOWN_MESSAGE_CHARS).collect();
    let cut = if shown.len() < message.len() {
        "\n<i>(shown cut; committed whole)</i>"
    } else {
        ""
    };
    let body = if shown.trim().is_empty() {
        "<i>(empty)</i>".to_string()
    } else {
        format!("<pre>{}</pre>", escape_html(&shown))
    };
    format!("{what}\n{body}{cut}")
}

/// [✅ Commit] (or [🌿 Branch]) [✎ Edit message] under a proposal.
pub(super) fn proposal_keyboard(run: &SessionId, branch: bool) -> Option<InlineKeyboard> {
    let (text, go, edit) = if branch {
        ("🌿 Branch", Press::Branch, Press::EditBranch)
    } else {
        ("✅ Commit", Press::Commit, Press::EditCommit)
    };
    Some(InlineKeyboard {
        inline_keyboard: vec![vec![
            InlineButton {
                text: text.into(),
                callback_data: go.data(run)?,
            },
            InlineButton {
                text: "✎ Edit message".into(),
                callback_data: edit.data(run)?,
            },
        ]],
    })
}

pub(super) fn committed_html(commit: &str, branch_name: &str, files: u64, branch: bool) -> String {
    let (icon, on) = if branch {
        ("🌿", "the new branch ")
    } else {
        ("✅", "")
    };
    format!(
        "{icon} Committed <code>{}</code> on {on}<code>{}</code> ({})",
        escape_html(commit),
        escape_html(branch_name),
        count(files, "file", "files")
    )
}

pub(super) fn failed_html(agent_name: &str, asked: Asked, message: &str) -> String {
    format!(
        "⚠️ <b>{}</b> could not {}: {}",
        escape_html(agent_name),
        asked.verb(),
        escape_html(message)
    )
}

pub(super) fn unknown_html(agent_name: &str, asked: Asked) -> String {
    format!(
        "⚠️ <b>{}</b> answered {} in a way this cloud does not understand; is the cloud up to date?",
        escape_html(agent_name),
        asked.button()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::checkpoints::FileStatus;

    fn file(path: &str) -> ChangedFile {
        ChangedFile {
            path: path.into(),
            status: FileStatus::Modified,
            added: 1,
            removed: 1,
            binary: false,
        }
    }

    #[test]
    fn a_diff_is_escaped_and_fits_one_message() {
        let files = vec![file("a.rs"), file("<b>.rs")];
        let html = diff_html("hello", &files, Some(1), "-<b>\n+&amp;\n", false);
        assert!(
            html.starts_with("🔍 <b>hello</b>: file 2 of 2\n• <code>&lt;b&gt;.rs</code> +1 −1\n"),
            "{html}"
        );
        assert!(
            html.contains(
                "<pre><code class=\"language-diff\">-&lt;b&gt;\n+&amp;amp;\n</code></pre>"
            ),
            "{html}"
        );
        // Escaping grows the HTML, not what Telegram counts.
        let long = "<&>\n".repeat(3_000);
        let html = diff_html("hello", &files, None, &long, true);
        let shown = html_to_text(&html);
        assert!(
            visible_len(&shown) <= MAX_MESSAGE_CHARS,
            "{}",
            visible_len(&shown)
        );
        assert!(shown.ends_with("the whole diff follows as a .diff file and a .html page."));
        let html = diff_html("hello", &files, None, &long, false);
        assert!(
            html.ends_with("<i>✂️ Cut to fit one message.</i>"),
            "{html}"
        );
        assert!(diff_html("hello", &files, None, "", false).contains("No text to show"));
        let emoji = "😀".repeat(3_000);
        let shown = html_to_text(&diff_html("hello", &files, None, &emoji, false));
        assert!(visible_len(&shown) <= MAX_MESSAGE_CHARS);
    }

    #[test]
    fn next_file_goes_through_the_files_once() {
        let run = SessionId::generate();
        let data =
            |k: Option<InlineKeyboard>| k.map(|k| k.inline_keyboard[0][0].callback_data.clone());
        assert_eq!(
            data(next_keyboard(&run, 3, None)),
            Press::File(0).data(&run)
        );
        assert_eq!(
            data(next_keyboard(&run, 3, Some(1))),
            Press::File(2).data(&run)
        );
        assert_eq!(next_keyboard(&run, 3, Some(2)), None);
        assert_eq!(next_keyboard(&run, 1, None), None);
    }

    #[test]
    fn help_names_every_checkpoint_button() {
        let run = SessionId::generate();
        let keyboards = [
            crate::checkpoint_card::card_keyboard(&run).ok(),
            next_keyboard(&run, 2, None),
            undo_anyway_keyboard(&run),
            proposal_keyboard(&run, false),
            proposal_keyboard(&run, true),
        ];
        for k in keyboards {
            for b in k.unwrap().inline_keyboard.iter().flatten() {
                assert!(
                    crate::bot::start::HELP.contains(&b.text),
                    "/help does not name {}",
                    b.text
                );
            }
        }
    }

    #[test]
    fn results_are_said_in_words() {
        assert_eq!(
            html_to_text(&committed_html("abc1234", "main", 4, false)),
            "✅ Committed abc1234 on main (4 files)"
        );
        assert_eq!(
            html_to_text(&committed_html("abc1234", "ra/hello/x", 1, true)),
            "🌿 Committed abc1234 on the new branch ra/hello/x (1 file)"
        );
        let many: Vec<String> = (0..12).map(|n| format!("f{n}")).collect();
        let refused = undo_refused_html("hello", &many);
        assert!(
            refused.contains("12 files changed again") && refused.contains("\nand 2 more"),
            "{refused}"
        );
        assert!(proposal_html("h", "fix <it>", false).contains("<pre>fix &lt;it&gt;</pre>"));
    }
}
