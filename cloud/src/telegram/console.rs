//! Console mode: prints what the bot would send, as the user would read it,
//! so the cloud can run locally without a bot token.

use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};

use super::InlineKeyboard;
use super::render::html_to_text;

#[derive(Default)]
pub(super) struct Console {
    last_id: AtomicI64,
}

fn buttons(keyboard: Option<&InlineKeyboard>) -> String {
    let Some(k) = keyboard else {
        return String::new();
    };
    let labels: Vec<String> = k
        .inline_keyboard
        .iter()
        .flatten()
        .map(|b| format!("[{}]", b.text))
        .collect();
    if labels.is_empty() {
        String::new()
    } else {
        format!("\n    {}", labels.join(" "))
    }
}

/// Writes to stdout, ignoring a closed pipe: printing is best effort and
/// must never take the process down.
fn print(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

impl Console {
    pub(super) fn send(
        &self,
        chat_id: i64,
        html: &str,
        keyboard: Option<&InlineKeyboard>,
        reply_to: Option<i64>,
    ) -> i64 {
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        let reply = reply_to.map(|r| format!(" ↩ #{r}")).unwrap_or_default();
        print(format!(
            "[bot → chat {chat_id} #{id}{reply}] {}{}",
            html_to_text(html),
            buttons(keyboard)
        ));
        id
    }

    pub(super) fn edit(
        &self,
        chat_id: i64,
        message_id: i64,
        html: &str,
        keyboard: Option<&InlineKeyboard>,
    ) {
        print(format!(
            "[bot ✎ chat {chat_id} #{message_id}] {}{}",
            html_to_text(html),
            buttons(keyboard)
        ));
    }

    pub(super) fn document(
        &self,
        chat_id: i64,
        file_name: &str,
        size: u64,
        caption: Option<&str>,
    ) -> i64 {
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        let caption = caption.map(html_to_text).unwrap_or_default();
        print(format!(
            "[bot → chat {chat_id} #{id}] 📎 {file_name} ({size} bytes) {caption}"
        ));
        id
    }

    pub(super) fn delete(&self, chat_id: i64, message_id: i64) {
        print(format!("[bot ✗ chat {chat_id} #{message_id}]"));
    }

    pub(super) fn toast(&self, text: Option<&str>) {
        if let Some(t) = text {
            print(format!("[bot toast] {t}"));
        }
    }
}
