//! How Claude's questions and plans look in Telegram, and the callback
//! data of their buttons (`proto::questions`; the presses are handled by
//! `bot/answer.rs`).
//!
//! A question is a message with one button per option and "✎ other" (the
//! user's next text message is the answer); a multi-select question has
//! toggle buttons (☐/☑) and "✔ Done", its selection kept in the buttons'
//! own data, so no replica needs to remember it. A plan is a message with
//! [✅ Approve plan] [✎ Revise] [⛔ Reject]; a plan too long for a message
//! is cut there and sent whole as `plan.md` just above.
//!
//! Callback data: `ans:{sessionId}:{requestId}:{choice}` (at most 58 bytes
//! with a 32-character session id and the longest request id), choice one
//! of [`Choice`]'s short codes: option indexes, never labels.

use remoteagent_proto::SessionId;
use remoteagent_proto::questions::{AskKind, PlanAsk, QuestionAsk};
use serde::{Deserialize, Serialize};

use super::page::{self, approx_duration, cut_to};
use crate::telegram::{InlineButton, InlineKeyboard, escape_html, render};

/// The prefix of every question or plan button.
pub const PREFIX: &str = "ans:";

/// Longest question shown, and longest option label and description.
const QUESTION_CHARS: usize = 800;
const LABEL_CHARS: usize = 80;
const DESCRIPTION_CHARS: usize = 120;
/// Longest button text (a label, cut).
const BUTTON_CHARS: usize = 40;
/// Longest plan shown in the message, in UTF-16 units: the rest of the
/// message stays far below Telegram's 4,096.
pub(crate) const PLAN_CHARS: usize = 3300;

/// What the cloud remembers of a question or plan message, so that a press
/// on any replica can act on it (in the session's approval messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Asked {
    /// The option labels, in order (an answer is sent as the label).
    Question {
        labels: Vec<String>,
        multi: bool,
    },
    Plan,
}

impl Asked {
    pub fn of(kind: &AskKind) -> Asked {
        match kind {
            AskKind::Question(q) => Asked::Question {
                labels: q.options.iter().map(|o| o.label.clone()).collect(),
                multi: q.multi_select,
            },
            AskKind::Plan(_) => Asked::Plan,
        }
    }
}

/// A button's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Option `n` of a single-select question.
    Pick(usize),
    /// A multi-select question's selection after a toggle (bit n = option n).
    Toggle(u8),
    /// A multi-select question answered with this selection.
    Done(u8),
    /// ✎ other: the next text message is the answer.
    Other,
    PlanApprove,
    /// ✎ Revise: the next text message is the feedback.
    PlanRevise,
    PlanReject,
}

impl Choice {
    pub fn code(self) -> String {
        match self {
            Choice::Pick(n) => format!("o{n}"),
            Choice::Toggle(m) => format!("t{m}"),
            Choice::Done(m) => format!("d{m}"),
            Choice::Other => "ot".into(),
            Choice::PlanApprove => "pa".into(),
            Choice::PlanRevise => "pr".into(),
            Choice::PlanReject => "pj".into(),
        }
    }

    pub fn parse(code: &str) -> Option<Choice> {
        let num = |s: &str| {
            (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u16>().ok())
                .flatten()
        };
        Some(match code {
            "ot" => Choice::Other,
            "pa" => Choice::PlanApprove,
            "pr" => Choice::PlanRevise,
            "pj" => Choice::PlanReject,
            _ => match code.split_at_checked(1)? {
                ("o", n) => Choice::Pick(usize::from(num(n)?)),
                ("t", m) => Choice::Toggle(u8::try_from(num(m)?).ok()?),
                ("d", m) => Choice::Done(u8::try_from(num(m)?).ok()?),
                _ => return None,
            },
        })
    }
}

/// `ans:{session}:{request}:{choice}`.
pub fn data(session: &SessionId, request: &str, choice: Choice) -> String {
    format!("{PREFIX}{session}:{request}:{}", choice.code())
}

/// Splits the part after [`PREFIX`]: (session, request, choice).
pub fn parse_data(rest: &str) -> Option<(&str, &str, Choice)> {
    let mut parts = rest.splitn(3, ':');
    let session = parts.next()?;
    let request = parts.next()?;
    let choice = Choice::parse(parts.next()?)?;
    Some((session, request, choice))
}

/// The labels picked in `mask`, joined as Claude Code's dialog joins them.
pub fn picked(labels: &[String], mask: u8) -> String {
    labels
        .iter()
        .enumerate()
        .filter(|(n, _)| *n < 8 && mask & (1 << n) != 0)
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn deadline(timeout_secs: u64) -> String {
    if timeout_secs > 0 {
        format!(
            "No answer in {} = Claude is told there was none.",
            approx_duration(timeout_secs)
        )
    } else {
        "No answer = Claude is told there was none.".into()
    }
}

/// `❓ <b>hello</b> asks (1 of 2) · Colour:` / the question / the options,
/// numbered with their descriptions / what to do.
pub(crate) fn question_html(agent: &str, q: &QuestionAsk, timeout_secs: u64) -> String {
    let agent = escape_html(&cut_to(agent.trim(), page::MAX_NAME_CHARS));
    let mut html = format!("❓ <b>{agent}</b> asks");
    if q.count > 1 {
        html.push_str(&format!(" ({} of {})", q.index, q.count));
    }
    let header = q.header.trim();
    if !header.is_empty() {
        html.push_str(&format!(
            " · <i>{}</i>",
            escape_html(&cut_to(header, LABEL_CHARS))
        ));
    }
    html.push_str(&format!(
        ":\n<b>{}</b>\n",
        escape_html(&cut_to(q.question.trim(), QUESTION_CHARS))
    ));
    for (n, o) in q.options.iter().enumerate() {
        html.push_str(&format!(
            "\n{}. {}",
            n + 1,
            escape_html(&cut_to(o.label.trim(), LABEL_CHARS))
        ));
        let d = o.description.trim();
        if !d.is_empty() {
            html.push_str(&format!(
                " — <i>{}</i>",
                escape_html(&cut_to(d, DESCRIPTION_CHARS))
            ));
        }
    }
    let how = match (q.options.is_empty(), q.multi_select) {
        (true, _) => "Tap ✎ other and send your answer as a message.",
        (false, false) => "Tap an option, or ✎ other and send your own answer as a message.",
        (false, true) => {
            "Tap the options that apply, then ✔ Done; or ✎ other and send your own answer as a message."
        }
    };
    html.push_str(&format!("\n\n{how}\n{}", deadline(timeout_secs)));
    html
}

/// One button per option (toggles and ✔ Done for a multi-select
/// question), ✎ other, and Stop. `None` if the data would not fit
/// Telegram's 64 bytes.
pub(crate) fn question_keyboard(
    session: &SessionId,
    request: &str,
    labels: &[String],
    multi: bool,
    mask: u8,
) -> Option<InlineKeyboard> {
    if !remoteagent_proto::events::valid_request_id(request) {
        return None;
    }
    let button = |text: String, choice: Choice| InlineButton {
        text,
        callback_data: data(session, request, choice),
    };
    let mut rows: Vec<Vec<InlineButton>> = Vec::new();
    for (n, label) in labels.iter().enumerate().take(8) {
        let label = cut_to(label.trim(), BUTTON_CHARS);
        rows.push(vec![if multi {
            let bit = 1u8 << n;
            let mark = if mask & bit != 0 { "☑" } else { "☐" };
            button(format!("{mark} {label}"), Choice::Toggle(mask ^ bit))
        } else {
            button(format!("{}. {label}", n + 1), Choice::Pick(n))
        }]);
    }
    let mut last = Vec::new();
    if multi {
        last.push(button("✔ Done".into(), Choice::Done(mask)));
    }
    last.push(button("✎ other".into(), Choice::Other));
    rows.push(last);
    rows.push(page::stop_keyboard(session).inline_keyboard.concat());
    fits(InlineKeyboard {
        inline_keyboard: rows,
    })
}

/// `📋 <b>hello</b> has a plan:` / the plan (cut to fit) / what to do.
pub(crate) fn plan_html(agent: &str, plan: &PlanAsk, timeout_secs: u64) -> String {
    let agent = escape_html(&cut_to(agent.trim(), page::MAX_NAME_CHARS));
    let text = plan.plan.trim();
    let mut html = format!("📋 <b>{agent}</b> has a plan:\n\n");
    if text.is_empty() {
        html.push_str("<i>(the plan is empty)</i>");
    } else {
        html.push_str(&escape_html(&cut_to(text, PLAN_CHARS)));
    }
    if plan_is_cut(plan) {
        html.push_str("\n\n✂️ The plan is cut here; the whole plan is in plan.md above.");
    }
    html.push_str(&format!(
        "\n\nTap ✎ Revise, then send what to change as a message.\nNo answer in {} = rejected.",
        approx_duration(timeout_secs.max(1))
    ));
    html
}

/// Whether the message shows less than the whole plan.
pub(crate) fn plan_is_cut(plan: &PlanAsk) -> bool {
    plan.cut_chars > 0 || render::visible_len(plan.plan.trim()) > PLAN_CHARS
}

/// [✅ Approve plan] [✎ Revise] [⛔ Reject], and Stop.
pub(crate) fn plan_keyboard(session: &SessionId, request: &str) -> Option<InlineKeyboard> {
    if !remoteagent_proto::events::valid_request_id(request) {
        return None;
    }
    let button = |text: &str, choice: Choice| InlineButton {
        text: text.into(),
        callback_data: data(session, request, choice),
    };
    fits(InlineKeyboard {
        inline_keyboard: vec![
            vec![button("✅ Approve plan", Choice::PlanApprove)],
            vec![
                button("✎ Revise", Choice::PlanRevise),
                button("⛔ Reject", Choice::PlanReject),
            ],
            page::stop_keyboard(session).inline_keyboard.concat(),
        ],
    })
}

fn fits(keyboard: InlineKeyboard) -> Option<InlineKeyboard> {
    keyboard
        .inline_keyboard
        .iter()
        .flatten()
        .all(|b| b.callback_data.len() <= page::MAX_CALLBACK_DATA)
        .then_some(keyboard)
}

/// The message right after a press, until the agent's answer arrives:
/// `⏳ answer "Blue", telling the agent…`.
pub(crate) fn pending_html(html: &str, what: &str) -> String {
    format!("{html}\n⏳ {}, telling the agent…", escape_html(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::questions::QuestionOption;

    fn question(multi: bool, n: usize) -> QuestionAsk {
        QuestionAsk {
            question: "Which <colour>?".into(),
            header: "Colour".into(),
            options: (0..n)
                .map(|i| QuestionOption {
                    label: format!("Option {i} & more"),
                    description: "d".repeat(500),
                })
                .collect(),
            multi_select: multi,
            index: 1,
            count: 2,
        }
    }

    #[test]
    fn choices_round_trip_and_odd_data_is_refused() {
        for c in [
            Choice::Pick(0),
            Choice::Pick(7),
            Choice::Toggle(255),
            Choice::Done(0),
            Choice::Other,
            Choice::PlanApprove,
            Choice::PlanRevise,
            Choice::PlanReject,
        ] {
            assert_eq!(Choice::parse(&c.code()), Some(c));
        }
        for bad in ["", "o", "o-1", "t256", "d1x", "x1", "o1234", "é"] {
            assert_eq!(Choice::parse(bad), None, "{bad}");
        }
        let sid = SessionId::generate();
        let d = data(&sid, "Abc123", Choice::Done(5));
        let (s, r, c) = parse_data(d.strip_prefix(PREFIX).unwrap()).unwrap();
        assert_eq!((s, r, c), (sid.as_str(), "Abc123", Choice::Done(5)));
        assert_eq!(picked(&["A".into(), "B".into(), "C".into()], 5), "A, C");
    }

    #[test]
    fn every_button_fits_telegrams_64_bytes() {
        let sid = SessionId::generate();
        let rid = "r".repeat(remoteagent_proto::events::MAX_REQUEST_ID_LEN);
        let labels: Vec<String> = (0..8).map(|i| format!("{i}{}", "é".repeat(100))).collect();
        for multi in [false, true] {
            let k = question_keyboard(&sid, &rid, &labels, multi, 255).unwrap();
            for b in k.inline_keyboard.iter().flatten() {
                assert!(b.callback_data.len() <= 64, "{}", b.callback_data);
                assert!(b.text.chars().count() <= BUTTON_CHARS + 3, "{}", b.text);
            }
            // Options, then Done/other, then Stop.
            assert_eq!(k.inline_keyboard.len(), 10);
        }
        let k = plan_keyboard(&sid, &rid).unwrap();
        assert!(
            k.inline_keyboard
                .iter()
                .flatten()
                .all(|b| b.callback_data.len() <= 64)
        );
        assert!(question_keyboard(&sid, "a:b", &labels, false, 0).is_none());
        let long = SessionId::parse("s".repeat(64)).unwrap();
        assert!(plan_keyboard(&long, "r1").is_none());
    }

    #[test]
    fn toggles_show_the_selection_and_carry_the_next_one() {
        let sid = SessionId::generate();
        let labels = vec!["A".to_string(), "B".to_string()];
        let k = question_keyboard(&sid, "r1", &labels, true, 0b01).unwrap();
        let texts: Vec<&str> = k
            .inline_keyboard
            .iter()
            .flatten()
            .map(|b| b.text.as_str())
            .collect();
        assert_eq!(texts, ["☑ A", "☐ B", "✔ Done", "✎ other", "⏹ Stop"]);
        assert!(k.inline_keyboard[0][0].callback_data.ends_with(":t0"));
        assert!(k.inline_keyboard[1][0].callback_data.ends_with(":t3"));
        assert!(k.inline_keyboard[2][0].callback_data.ends_with(":d1"));
    }

    #[test]
    fn questions_and_plans_render_escaped_and_fit_a_message() {
        let html = question_html("hello", &question(false, 8), 300);
        assert!(html.starts_with("❓ <b>hello</b> asks (1 of 2) · <i>Colour</i>:\n<b>Which &lt;colour&gt;?</b>\n\n1. Option 0 &amp; more — <i>"), "{html}");
        assert!(
            html.ends_with("No answer in 5 min = Claude is told there was none."),
            "{html}"
        );
        let text = render::html_to_text(&html);
        assert!(render::visible_len(&text) < 4096);
        let huge = PlanAsk {
            plan: "step <1>\n".repeat(2000),
            cut_chars: 10,
        };
        let html = plan_html(&"n".repeat(500), &huge, 300);
        assert!(render::visible_len(&render::html_to_text(&html)) < 4096);
        assert!(html.contains("plan.md above"), "{html}");
        assert!(html.contains("step &lt;1&gt;"));
        let short = PlanAsk {
            plan: "1. read\n2. fix".into(),
            cut_chars: 0,
        };
        assert!(!plan_is_cut(&short));
        assert_eq!(
            plan_html("hello", &short, 60),
            "📋 <b>hello</b> has a plan:\n\n1. read\n2. fix\n\nTap ✎ Revise, then send what to change as a message.\nNo answer in 1 min = rejected."
        );
    }
}
