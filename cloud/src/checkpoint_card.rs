//! The diff card (issue 18): what a run changed in its git project, shown
//! as a message of its own after the run's end, with [🔍 Diff] [↩️ Undo]
//! [✅ Commit] [🌿 Branch]; and the callback data of every checkpoint
//! button. Used by the forwarder (a run's `changes` event) and the bot (an
//! undo's own `changes`, and the buttons' presses, `bot::checkpoints`);
//! depends on neither.
//!
//! Callback data is `ck:{letter}:{run}` (`ck:n:{run}:{file}` for Next
//! file), `run` being the id of the stream whose `changes` made the card:
//! the cloud's own 32-hex-digit ids (a prompt's session, or an undo's
//! answer), so every button fits Telegram's 64 bytes. An id too long for
//! that (none the cloud makes) gets a card without buttons that says so.

use remoteagent_proto::SessionId;
use remoteagent_proto::checkpoints::{CARD_FILES, ChangedFile, ChangesPayload, FileStatus};
use remoteagent_proto::text::plural::count;

use crate::telegram::{InlineButton, InlineKeyboard, escape_html};

/// Every checkpoint button's data starts with this.
pub const PREFIX: &str = "ck:";
/// Telegram's limit on callback data, in bytes.
const MAX_DATA_BYTES: usize = 64;
/// A path longer than this is shown by its end.
const MAX_PATH_CHARS: usize = 120;

/// A checkpoint button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// 🔍 Diff: the whole diff.
    Diff,
    /// ▶ Next file: the diff of the file at this index.
    File(u64),
    /// ↩️ Undo.
    Undo,
    /// ↩️ Undo anyway (after a refusal).
    UndoAnyway,
    /// ✅ Commit on the card: propose a message for a commit.
    ProposeCommit,
    /// 🌿 Branch on the card: propose a message for a new branch.
    ProposeBranch,
    /// ✅ Commit under a proposal: commit with the proposed message.
    Commit,
    /// 🌿 Branch under a proposal: commit on a new branch with it.
    Branch,
    /// ✎ Edit message under a commit's proposal.
    EditCommit,
    /// ✎ Edit message under a branch's proposal.
    EditBranch,
}

impl Press {
    fn letter(self) -> char {
        match self {
            Press::Diff => 'd',
            Press::File(_) => 'n',
            Press::Undo => 'u',
            Press::UndoAnyway => 'U',
            Press::ProposeCommit => 'c',
            Press::ProposeBranch => 'b',
            Press::Commit => 'C',
            Press::Branch => 'B',
            Press::EditCommit => 'e',
            Press::EditBranch => 'f',
        }
    }

    /// The button's data for `run`; `None` if it would not fit.
    pub fn data(self, run: &SessionId) -> Option<String> {
        let data = match self {
            Press::File(n) => format!("{PREFIX}n:{run}:{n}"),
            other => format!("{PREFIX}{}:{run}", other.letter()),
        };
        (data.len() <= MAX_DATA_BYTES).then_some(data)
    }

    /// A press's data without [`PREFIX`]: the press and the run's id as
    /// sent (whatever a client sends; checked by the caller).
    pub fn parse(rest: &str) -> Option<(Press, &str)> {
        let (letter, run) = rest.split_once(':')?;
        let press = match letter {
            "d" => Press::Diff,
            "n" => {
                let (run, n) = run.rsplit_once(':')?;
                return Some((Press::File(n.parse().ok()?), run));
            }
            "u" => Press::Undo,
            "U" => Press::UndoAnyway,
            "c" => Press::ProposeCommit,
            "b" => Press::ProposeBranch,
            "C" => Press::Commit,
            "B" => Press::Branch,
            "e" => Press::EditCommit,
            "f" => Press::EditBranch,
            _ => return None,
        };
        Some((press, run))
    }
}

/// Whose changes a card shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardOf {
    /// A run's.
    Run,
    /// An undo's (itself checkpointed, so it can be undone too).
    Undo,
}

/// The card's text: `📝 hello changed 4 files (+120 −8)`, up to
/// [`CARD_FILES`] files with their counts, the rest counted, and the
/// worktree's branch when the run had one.
pub fn card_html(agent_name: &str, changes: &ChangesPayload, of: CardOf) -> String {
    let name = escape_html(agent_name);
    let total = changes.files_total.max(changes.files.len() as u64);
    let files = count(total, "file", "files");
    let sums = format!("(+{} −{})", changes.added, changes.removed);
    let mut html = match of {
        CardOf::Run => format!("📝 <b>{name}</b> changed {files} {sums}"),
        CardOf::Undo => format!("📝 The undo on <b>{name}</b> changed {files} {sums}"),
    };
    let shown = changes.files.iter().take(CARD_FILES);
    let listed = shown.len() as u64;
    for f in shown {
        html.push('\n');
        html.push_str(&file_line(f));
    }
    if total > listed {
        html.push_str(&format!("\nand {} more", total - listed));
    }
    if let Some(branch) = &changes.worktree_branch {
        html.push_str(&format!(
            "\n🌿 In a worktree of its own, on branch <code>{}</code>",
            escape_html(&shown_path(branch))
        ));
    }
    html
}

/// One file of the card: `src/a.rs +100 −2`, `logo.png binary (new)`.
pub fn file_line(f: &ChangedFile) -> String {
    let counts = if f.binary {
        "binary".to_string()
    } else {
        format!("+{} −{}", f.added, f.removed)
    };
    let status = match f.status {
        FileStatus::Added => " (new)",
        FileStatus::Deleted => " (deleted)",
        FileStatus::TypeChanged => " (type or mode)",
        FileStatus::Modified | FileStatus::Other => "",
    };
    format!(
        "• <code>{}</code> {counts}{status}",
        escape_html(&shown_path(&f.path))
    )
}

/// A path as shown: whole, or its last [`MAX_PATH_CHARS`] characters.
pub fn shown_path(path: &str) -> String {
    let chars = path.chars().count();
    if chars <= MAX_PATH_CHARS {
        return path.to_string();
    }
    let tail: String = path.chars().skip(chars - (MAX_PATH_CHARS - 1)).collect();
    format!("…{tail}")
}

/// The card's buttons, or (when the run's id is too long for callback
/// data) the line that a card without them ends with.
pub fn card_keyboard(run: &SessionId) -> Result<InlineKeyboard, &'static str> {
    let button = |text: &str, press: Press| {
        press.data(run).map(|callback_data| InlineButton {
            text: text.into(),
            callback_data,
        })
    };
    let rows = [
        [
            button("🔍 Diff", Press::Diff),
            button("↩️ Undo", Press::Undo),
        ],
        [
            button("✅ Commit", Press::ProposeCommit),
            button("🌿 Branch", Press::ProposeBranch),
        ],
    ];
    let mut keyboard = InlineKeyboard::default();
    for row in rows {
        let row: Option<Vec<InlineButton>> = row.into_iter().collect();
        match row {
            Some(row) => keyboard.inline_keyboard.push(row),
            None => return Err(NO_BUTTONS),
        }
    }
    Ok(keyboard)
}

/// Said on a card without buttons.
pub const NO_BUTTONS: &str =
    "<i>(no buttons: use remoteagentctl diff, undo or commit on the computer)</i>";

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, added: u64, removed: u64) -> ChangedFile {
        ChangedFile {
            path: path.into(),
            status: FileStatus::Modified,
            added,
            removed,
            binary: false,
        }
    }

    #[test]
    fn the_card_counts_escapes_and_cuts_the_list() {
        let mut files: Vec<ChangedFile> =
            (0..12).map(|n| file(&format!("f{n}.rs"), n, 1)).collect();
        files[0] = file("<b>&.rs", 100, 2);
        files[1] = ChangedFile {
            binary: true,
            status: FileStatus::Added,
            ..file("logo.png", 0, 0)
        };
        let changes = ChangesPayload {
            files,
            files_total: 13,
            added: 120,
            removed: 8,
            worktree_branch: Some("ra/hello/ab12".into()),
        };
        let html = card_html("hello", &changes, CardOf::Run);
        assert!(
            html.starts_with("📝 <b>hello</b> changed 13 files (+120 −8)\n"),
            "{html}"
        );
        assert!(
            html.contains("• <code>&lt;b&gt;&amp;.rs</code> +100 −2\n"),
            "{html}"
        );
        assert!(
            html.contains("• <code>logo.png</code> binary (new)\n"),
            "{html}"
        );
        assert_eq!(html.matches("• ").count(), CARD_FILES, "{html}");
        assert!(html.contains("\nand 3 more\n"), "{html}");
        assert!(
            html.ends_with("on branch <code>ra/hello/ab12</code>"),
            "{html}"
        );
        let one = ChangesPayload {
            files: vec![file("a", 1, 0)],
            files_total: 1,
            added: 1,
            removed: 0,
            worktree_branch: None,
        };
        assert_eq!(
            card_html("hi", &one, CardOf::Undo),
            "📝 The undo on <b>hi</b> changed 1 file (+1 −0)\n• <code>a</code> +1 −0"
        );
        let long = "d/".repeat(100) + "x.rs";
        assert!(shown_path(&long).starts_with('…') && shown_path(&long).ends_with("/x.rs"));
        assert_eq!(shown_path(&long).chars().count(), MAX_PATH_CHARS);
    }

    #[test]
    fn every_button_fits_and_parses_back() {
        let run = SessionId::generate();
        let keyboard = card_keyboard(&run).unwrap();
        let texts: Vec<&str> = keyboard
            .inline_keyboard
            .iter()
            .flatten()
            .map(|b| b.text.as_str())
            .collect();
        assert_eq!(texts, ["🔍 Diff", "↩️ Undo", "✅ Commit", "🌿 Branch"]);
        for press in [
            Press::Diff,
            Press::File(199),
            Press::Undo,
            Press::UndoAnyway,
            Press::ProposeCommit,
            Press::ProposeBranch,
            Press::Commit,
            Press::Branch,
            Press::EditCommit,
            Press::EditBranch,
        ] {
            let data = press.data(&run).unwrap();
            assert!(data.len() <= 64, "{data}");
            let rest = data.strip_prefix(PREFIX).unwrap();
            assert_eq!(Press::parse(rest), Some((press, run.as_str())));
        }
        assert_eq!(Press::parse("x:abc"), None);
        assert_eq!(Press::parse("n:abc:-1"), None);
        let long = SessionId::parse("a".repeat(64)).unwrap();
        assert_eq!(card_keyboard(&long), Err(NO_BUTTONS));
    }
}
