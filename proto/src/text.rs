//! Cleaning text that came from elsewhere before it is stored or shown.
//!
//! Pure functions shared by the daemon, the CLI and the cloud, so that a name
//! or a prompt is cleaned the same way wherever it ends up:
//!
//! * [`clean_name`] for names and hostnames: no control characters, no
//!   invisible format characters (Unicode category Cf: bidi overrides such as
//!   U+202E, zero-width spaces and joiners, the BOM, soft hyphens …), trimmed
//!   and capped. A name shown in a list or a chat must look like what it is.
//! * [`for_terminal`] / [`for_terminal_line`] for remote text a terminal
//!   prints (prompts in `remoteagentctl logs`, notices, the session log
//!   header): escape sequences removed whole (CSI, OSC including OSC 52
//!   clipboard writes, DCS …), other C0/C1 controls and Cf characters
//!   dropped, so remote input can neither drive the terminal nor reorder
//!   what is on screen.

pub mod ansi;
pub mod plural;

/// Longest agent (project) name kept, in characters.
pub const MAX_NAME_CHARS: usize = 40;
/// Longest hostname kept, in characters.
pub const MAX_HOSTNAME_CHARS: usize = 255;

/// Whether `c` is an invisible formatting character (Unicode category Cf)
/// or a line/paragraph separator (Zl, Zp), which can hide or reorder text.
///
/// The standard library has no category lookup; this is the Cf list of
/// Unicode 15.1, which changes rarely.
pub fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Cleans a name or hostname for storing and showing: escape sequences
/// removed whole, control and format characters removed, whitespace runs
/// made one space, trimmed, at most `max_chars` characters. May return an
/// empty string; callers pick their fallback.
pub fn clean_name(name: &str, max_chars: usize) -> String {
    let name = ansi::strip(name);
    let mut out = String::with_capacity(name.len().min(max_chars * 4));
    let mut pending_space = false;
    let mut count = 0;
    for c in name.chars() {
        if c.is_whitespace() {
            // Tabs and newlines are controls too; as separators they become
            // one space, so "a\tb" stays two words.
            pending_space = true;
            continue;
        }
        if c.is_control() || is_format_char(c) {
            continue;
        }
        if pending_space && count > 0 {
            if count + 1 >= max_chars {
                break;
            }
            out.push(' ');
            count += 1;
        }
        pending_space = false;
        if count >= max_chars {
            break;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Cleans remote text for a terminal: escape sequences removed whole, other
/// control characters except `\n` and `\t` dropped, format characters
/// dropped. Multi-line text keeps its lines.
pub fn for_terminal(text: &str) -> String {
    let stripped = ansi::strip(text);
    stripped
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !(c.is_control() || is_format_char(c)))
        .collect()
}

/// Like [`for_terminal`], for text shown on one line (a header, a list
/// cell): line breaks and tabs become spaces.
pub fn for_terminal_line(text: &str) -> String {
    for_terminal(text)
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a\x1b]0;TITLE\x07b\x1b[2Jc\x1b]52;c;aGk=\x07d\u{202E}e\u{9b}31mf\x1bPdcs\x1b\\g\rh\x7fi\u{200B}j";

    fn has_no_hostile_chars(s: &str) -> bool {
        !s.chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || is_format_char(c))
    }

    #[test]
    fn for_terminal_removes_sequences_controls_and_bidi() {
        assert_eq!(for_terminal(HOSTILE), "abcdefghij");
        assert_eq!(for_terminal("line 1\n\tline 2\n"), "line 1\n\tline 2\n");
        assert_eq!(for_terminal_line("line 1\n\tline 2"), "line 1  line 2");
        assert_eq!(for_terminal("ünïcödé — ok"), "ünïcödé — ok");
        assert!(has_no_hostile_chars(&for_terminal(HOSTILE)));
    }

    #[test]
    fn clean_name_strips_format_characters_and_caps() {
        assert_eq!(clean_name("  my\u{7}proj ", 40), "myproj");
        assert_eq!(clean_name("evil\u{202E}gpj.exe", 40), "evilgpj.exe");
        assert_eq!(
            clean_name("\u{FEFF}a\u{200B}b\u{200D}c\u{2066}d\u{2069}\u{00AD}e", 40),
            "abcde"
        );
        assert_eq!(clean_name("a \t\n b", 40), "a b");
        assert_eq!(clean_name("web\x1b[2J\x1b]0;t\x07", 40), "web");
        assert_eq!(clean_name("\u{202E}\u{200B}", 40), "");
        assert_eq!(clean_name(&"x".repeat(100), 40).chars().count(), 40);
        assert_eq!(clean_name(&"é".repeat(100), 40).chars().count(), 40);
        // A space is never the last character after capping.
        assert_eq!(clean_name("abc def", 4), "abc");
        assert_eq!(clean_name("ab cdef", 4), "ab c");
    }

    #[test]
    fn every_listed_format_char_is_removed() {
        for c in [
            '\u{00AD}',
            '\u{061C}',
            '\u{180E}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2060}',
            '\u{2064}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{206F}',
            '\u{FEFF}',
            '\u{E0041}',
        ] {
            assert_eq!(clean_name(&format!("a{c}b"), 40), "ab", "{:X}", c as u32);
            assert_eq!(for_terminal(&format!("a{c}b")), "ab", "{:X}", c as u32);
        }
    }
}
