//! Cleaning names that come from outside (a daemon's project name and
//! hostname) before the cloud stores them and shows them in Telegram.
//!
//! Control characters, Unicode format characters (category Cf: the bidi
//! overrides and isolates such as U+202E, zero-width spaces and joiners,
//! the BOM, tag characters) and line/paragraph separators are dropped: they
//! let a name look like another one ("gnp.exe" shown as "exe.png") or hide
//! text. Whitespace runs become one space, and the length is capped in
//! characters.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest agent name kept, in characters.
pub const MAX_NAME_CHARS: usize = 40;
/// Longest hostname kept, in characters (a DNS label is at most 63).
pub const MAX_HOSTNAME_CHARS: usize = 64;

/// Whether `c` is invisible or reorders text: never kept in a name.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
                | GeneralCategory::Control
        )
}

/// `text` without hidden characters, whitespace collapsed and trimmed, at
/// most `max_chars` characters.
pub fn clean_name(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut pending_space = false;
    for c in text.chars().filter(|c| !is_hidden(*c)) {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out.chars()
        .take(max_chars)
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_and_zero_width_characters_are_dropped() {
        assert_eq!(clean_name("inv\u{202E}gnp.exe", 40), "invgnp.exe");
        assert_eq!(
            clean_name(
                "a\u{200B}b\u{200D}c\u{2066}d\u{2069}e\u{FEFF}f\u{061C}g\u{E0041}",
                40
            ),
            "abcdefg"
        );
        assert_eq!(clean_name("a\u{2028}b\u{2029}c\u{7}d\u{9b}e", 40), "abcde");
    }

    #[test]
    fn whitespace_is_collapsed_and_length_capped() {
        assert_eq!(clean_name("  my \t\n proj  ", 40), "my proj");
        assert_eq!(clean_name(&"é".repeat(100), 40).chars().count(), 40);
        assert_eq!(clean_name("abc def", 4), "abc");
        assert_eq!(clean_name("\u{202E}\u{200B}", 40), "");
        assert_eq!(clean_name("日本語 ✓", 40), "日本語 ✓");
    }
}
