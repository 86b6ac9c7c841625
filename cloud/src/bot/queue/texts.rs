//! What the queue says: every text names the agent, shows a prompt by its
//! first characters, never an id.

use crate::telegram::{InlineButton, InlineKeyboard, escape_html};

use super::{CANCEL, RUN_NOW};

/// Characters of a prompt shown in the queue's messages.
const PREVIEW_CHARS: usize = 60;

/// "1st", "2nd", "3rd", "4th", … "11th", "21st".
pub fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// "1 prompt", "3 prompts".
pub fn prompts(n: usize) -> String {
    if n == 1 {
        "1 prompt".to_string()
    } else {
        format!("{n} prompts")
    }
}

/// The prompt's first characters, on one line.
pub fn preview(prompt: &str) -> String {
    let line: String = prompt.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = line.chars().take(PREVIEW_CHARS).collect();
    if line.chars().count() > PREVIEW_CHARS {
        out.push('…');
    }
    out
}

/// "⏳ queued (2nd) for hello", the answer to a prompt that waits.
pub fn queued_html(place: usize, agent: &str) -> String {
    format!(
        "⏳ queued ({}) for <b>{}</b>: it runs when the current run ends.",
        ordinal(place),
        escape_html(agent)
    )
}

/// [▶ Run now — stop current] [✖ Cancel] under a queued prompt's message.
pub fn queued_keyboard(id: &str) -> InlineKeyboard {
    InlineKeyboard {
        inline_keyboard: vec![vec![
            InlineButton {
                text: "▶ Run now — stop current".into(),
                callback_data: format!("{RUN_NOW}{id}"),
            },
            InlineButton {
                text: "✖ Cancel".into(),
                callback_data: format!("{CANCEL}{id}"),
            },
        ]],
    }
}

/// [✖ Cancel] alone, once Run now was pressed.
pub fn cancel_keyboard(id: &str) -> InlineKeyboard {
    InlineKeyboard::single("✖ Cancel", format!("{CANCEL}{id}"))
}

/// A queued prompt's message once it started.
pub fn running_html(agent: &str, prompt: &str) -> String {
    format!(
        "▶ your queued prompt runs now on <b>{}</b>: “{}”",
        escape_html(agent),
        escape_html(&preview(prompt))
    )
}

/// A queued prompt's message once cancelled.
pub fn cancelled_html(agent: &str, prompt: &str) -> String {
    format!(
        "✖ cancelled: “{}” will not run on <b>{}</b>.",
        escape_html(&preview(prompt)),
        escape_html(agent)
    )
}

/// A queued prompt's message once dropped because its agent was offline
/// (or unpaired) when its turn came.
pub fn dropped_html(agent: &str, prompt: &str, why: &str) -> String {
    format!(
        "⚠️ dropped from the queue of <b>{}</b> ({why}): “{}”",
        escape_html(agent),
        escape_html(&preview(prompt))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_read_as_english() {
        let got: Vec<String> = [1, 2, 3, 4, 5, 11, 12, 13, 21, 22, 101]
            .into_iter()
            .map(ordinal)
            .collect();
        assert_eq!(
            got,
            [
                "1st", "2nd", "3rd", "4th", "5th", "11th", "12th", "13th", "21st", "22nd", "101st"
            ]
        );
    }

    #[test]
    fn previews_are_one_line_and_capped() {
        assert_eq!(preview("fix\nthe   test"), "fix the test");
        let long = "é".repeat(70);
        let shown = preview(&long);
        assert_eq!(shown.chars().count(), PREVIEW_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn button_data_fits_telegram() {
        let keyboard = queued_keyboard(&crate::db::queue::new_id());
        for b in &keyboard.inline_keyboard[0] {
            assert!(b.callback_data.len() <= 64, "{}", b.callback_data);
        }
    }
}
