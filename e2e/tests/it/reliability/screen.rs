//! What a reliability scenario ends with: the chat as the user sees it
//! ([`Screen`]) and every problem found in it, reported at once ([`Verdict`]).

use super::*;

/// The chat as the user sees it: messages (edits applied) and the captions
/// of the files sent to it.
pub(super) struct Screen {
    pub(super) messages: Vec<FakeMessage>,
    pub(super) captions: Vec<String>,
}

impl Screen {
    /// Every message's text in chat order, joined without separators, so
    /// that a line cut by a page break reads whole again.
    pub(super) fn joined(&self) -> String {
        self.messages.iter().map(|m| m.text.as_str()).collect()
    }

    pub(super) fn all_texts(&self) -> impl Iterator<Item = &str> {
        self.messages
            .iter()
            .map(|m| m.text.as_str())
            .chain(self.captions.iter().map(String::as_str))
    }

    /// The status line shown, if any.
    pub(super) fn status(&self) -> Option<String> {
        self.all_texts()
            .flat_map(str::lines)
            .find(|l| STATUS_MARKS.iter().any(|m| l.contains(m)))
            .map(str::to_string)
    }

    /// Messages that still carry a Stop button.
    pub(super) fn stop_buttons(&self) -> Vec<i64> {
        self.messages
            .iter()
            .filter(|m| {
                m.reply_markup
                    .as_ref()
                    .is_some_and(|k| k.to_string().contains("\"stop:"))
            })
            .map(|m| m.message_id)
            .collect()
    }

    /// Lines telling the user that output was lost or could not be shown.
    pub(super) fn loss_notices(&self) -> Vec<String> {
        self.all_texts()
            .flat_map(str::lines)
            .filter(|l| {
                l.contains("⚠️") && (l.contains("lost") || l.contains("could not be shown"))
            })
            .map(str::to_string)
            .collect()
    }

    /// Messages that hold output (a numbered line or a piece of one).
    pub(super) fn output_pages(&self) -> usize {
        self.messages
            .iter()
            .filter(|m| m.text.contains("the quick <brown>") || m.text.contains("<flood>"))
            .count()
    }

    pub(super) fn mentions(&self, what: &str) -> bool {
        self.all_texts().any(|t| t.contains(what))
    }
}

/// What went wrong in a scenario; reported all at once at the end.
#[derive(Default)]
pub(super) struct Verdict {
    pub(super) name: &'static str,
    pub(super) problems: Vec<String>,
}

impl Verdict {
    pub(super) fn new(name: &'static str) -> Verdict {
        Verdict {
            name,
            problems: Vec::new(),
        }
    }

    pub(super) fn problem(&mut self, p: impl Into<String>) {
        let p = p.into();
        eprintln!("[{}] PROBLEM: {p}", self.name);
        self.problems.push(p);
    }

    pub(super) fn figure(&self, what: &str, value: impl std::fmt::Display) {
        eprintln!("[{}] {what}: {value}", self.name);
    }

    /// Refusals (400) by the Bot API must each have been told to the user.
    /// "message is not modified" is the exception: what the edit wanted is
    /// already on screen (a resumed forwarder repeating its last edit), so
    /// nothing is missing; such answers are counted, not judged.
    pub(super) fn refusals_told(&mut self, w: &World) {
        let (unchanged, refused): (Vec<String>, Vec<String>) =
            w.tg.calls()
                .into_iter()
                .filter(|c| c.status == 400)
                .map(|c| format!("{} → {}", c.method, c.response["description"]))
                .partition(|d| d.contains("message is not modified"));
        self.figure(
            "Bot API calls answered 400",
            refused.len() + unchanged.len(),
        );
        self.figure("of them \"message is not modified\"", unchanged.len());
        if !refused.is_empty() && w.screen().loss_notices().is_empty() {
            self.problem(format!(
                "{} call(s) refused without telling the user: {refused:?}",
                refused.len()
            ));
        }
    }

    /// Lines 1..=count of `numbered.sh`: each shown (at least once; exactly
    /// once if `exactly_once`), attached in the output file, or announced
    /// as lost.
    pub(super) fn numbered_lines(&mut self, w: &World, count: u64, exactly_once: bool) {
        let screen = w.screen();
        let joined = screen.joined();
        let file: String =
            w.tg.documents_in(OWNER)
                .iter()
                .map(|d| String::from_utf8_lossy(&d.bytes).into_owned())
                .collect();
        let mut missing = Vec::new();
        let mut repeated = Vec::new();
        for n in 1..=count {
            let line = numbered_line(n);
            let shown = joined.matches(&line).count();
            if shown > 1 {
                repeated.push((n, shown));
            }
            if shown == 0 && !file.contains(&line) {
                missing.push(n);
            }
        }
        let notices = screen.loss_notices();
        self.figure("lines", count);
        self.figure("lines neither shown nor attached", missing.len());
        self.figure("lines shown more than once", repeated.len());
        self.figure("loss notices", format!("{notices:?}"));
        self.figure("output pages", screen.output_pages());
        if !missing.is_empty() && notices.is_empty() {
            self.problem(format!(
                "{} line(s) neither shown, attached nor announced lost (first {:?}, last {:?})",
                missing.len(),
                missing.first(),
                missing.last()
            ));
        }
        if exactly_once && !repeated.is_empty() {
            self.problem(format!(
                "{} line(s) shown more than once, e.g. {:?}",
                repeated.len(),
                &repeated[..repeated.len().min(5)]
            ));
        }
    }

    pub(super) fn nothing_lost(&mut self, w: &World, count: u64) {
        let screen = w.screen();
        let joined = screen.joined();
        let missing = (1..=count)
            .filter(|n| !joined.contains(&numbered_line(*n)))
            .count();
        if missing > 0 {
            self.problem(format!(
                "{missing} line(s) missing although Redis kept everything (AOF)"
            ));
        }
    }

    pub(super) fn finish(self, w: &World) {
        if !self.problems.is_empty() {
            panic!(
                "[{}] {} problem(s):\n- {}\nmessages: {:#?}\n{}",
                self.name,
                self.problems.len(),
                self.problems.join("\n- "),
                w.tg.messages(OWNER),
                w.logs()
            );
        }
    }
}
