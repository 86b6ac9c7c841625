//! Scoped answers on an approval request: [✅ Once | ⛔ Deny] (plain
//! [✅ Approve | ⛔ Deny] when no rule is offered), then
//! [✅ `rule` this session] and [✅ `rule` always here] when the daemon
//! offered a rule, and Stop. The rule is the daemon's (derived from the
//! request itself); a button only picks the scope, as one letter after the
//! request id: `approve:{sessionId}:{requestId}:s` or `…:a` (plain
//! `approve:…` is once, as older messages' buttons say).

use remoteagent_proto::SessionId;
use remoteagent_proto::rules::Scope;

use super::page::{MAX_CALLBACK_DATA, approval_keyboard};
use crate::telegram::{InlineButton, InlineKeyboard, escape_html};

/// Characters of a rule shown on a button (the message shows it whole).
const BUTTON_RULE_CHARS: usize = 32;

/// The request's keyboard: with the scoped buttons when a rule is offered
/// and their data fits.
pub(super) fn keyboard(
    session: &SessionId,
    request_id: &str,
    rule: Option<&str>,
) -> Option<InlineKeyboard> {
    let mut keyboard = approval_keyboard(session, request_id)?;
    let Some(rule) = rule else {
        return Some(keyboard);
    };
    let shown = cut(rule_inside(rule), BUTTON_RULE_CHARS);
    let mut rows = Vec::new();
    for scope in [Scope::Session, Scope::Always] {
        let data = format!("approve:{session}:{request_id}:{}", scope.letter());
        if data.len() > MAX_CALLBACK_DATA {
            return Some(keyboard);
        }
        rows.push(vec![InlineButton {
            text: format!("✅ {shown} {}", scope.words()),
            callback_data: data,
        }]);
    }
    // Beside the scoped answers, plain Approve reads "Once".
    keyboard.inline_keyboard[0][0].text = "✅ Once".into();
    keyboard.inline_keyboard.splice(1..1, rows);
    Some(keyboard)
}

/// The line under the request that shows the rule whole.
pub(super) fn rule_line(rule: &str) -> String {
    format!(
        "\nRule offered: <code>{}</code>",
        escape_html(&cut(rule, 200))
    )
}

/// `cargo test *` from `Bash(cargo test *)`: buttons are short.
fn rule_inside(rule: &str) -> &str {
    rule.split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(rule)
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The toast after a scoped press: `Saved: Bash(cargo test *) for hello,
/// this session`.
pub fn saved_text(rule: &str, agent: &str, scope: Scope) -> String {
    format!("Saved: {rule} for {agent}, {}", scope.words())
}

/// A button's `{requestId}[:{scope}]` split; `None` scope is once.
pub fn split_scope(request: &str) -> (&str, Option<Scope>) {
    match request.split_once(':') {
        Some((rid, letter)) => (rid, Scope::from_letter(letter)),
        None => (request, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_buttons_carry_one_letter_and_fit() {
        let sid = SessionId::generate();
        let k = keyboard(&sid, "abcdefghijklmnop", Some("Bash(cargo test *)")).unwrap();
        let rows = &k.inline_keyboard;
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert_eq!(rows[0][0].text, "✅ Once");
        assert_eq!(rows[0][1].text, "⛔ Deny");
        assert_eq!(rows[1][0].text, "✅ cargo test * this session");
        assert_eq!(rows[2][0].text, "✅ cargo test * always here");
        assert_eq!(
            rows[1][0].callback_data,
            format!("approve:{sid}:abcdefghijklmnop:s")
        );
        for b in rows.iter().flatten() {
            assert!(b.callback_data.len() <= MAX_CALLBACK_DATA, "{b:?}");
        }
        assert_eq!(keyboard(&sid, "r1", None).unwrap().inline_keyboard.len(), 2);
        assert_eq!(split_scope("r1:a"), ("r1", Some(Scope::Always)));
        assert_eq!(split_scope("r1"), ("r1", None));
        assert_eq!(
            saved_text("Bash(cargo test *)", "hello", Scope::Session),
            "Saved: Bash(cargo test *) for hello, this session"
        );
        assert_eq!(
            rule_line("Bash(a<b)"),
            "\nRule offered: <code>Bash(a&lt;b)</code>"
        );
    }
}
