//! Removing terminal escape sequences from a text stream.
//!
//! The daemon strips runner output with it; [`super::for_terminal`] uses it
//! for everything remote that a terminal shows. Runners get `NO_COLOR=1` and
//! `TERM=dumb`, yet some CLIs (or the tools they start) still write colours,
//! cursor moves or window titles. On a phone those arrive as `[1;32m`
//! litter, so they are removed here. The
//! stripper is a small state machine over characters that keeps its state
//! between pushes: a sequence split across two pipe reads is still removed
//! whole, and ordinary text is never held back.

/// Where the stripper is inside an escape sequence.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Plain text.
    #[default]
    Text,
    /// After ESC.
    Esc,
    /// After ESC and one or more intermediate characters (`ESC ( B`).
    EscIntermediate,
    /// Control Sequence (`ESC [` … final character).
    Csi,
    /// Operating System Command (`ESC ]` … BEL or ESC \).
    Osc,
    /// ESC inside an OSC: `\` ends it.
    OscEsc,
    /// DCS, SOS, PM or APC string (`ESC P` … ESC \).
    Str,
    /// ESC inside such a string.
    StrEsc,
}

/// Strips ANSI/ECMA-48 escape sequences (and BEL) from a text stream.
#[derive(Debug, Default)]
pub struct AnsiStrip {
    state: State,
}

impl AnsiStrip {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds text; returns it without escape sequences.
    pub fn push(&mut self, text: &str) -> String {
        // Nothing to do in the common case: no escape, no sequence open.
        if self.state == State::Text && !text.chars().any(is_special) {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            self.step(c, &mut out);
        }
        out
    }

    /// Ends the stream: an unfinished sequence is dropped.
    pub fn finish(&mut self) {
        self.state = State::Text;
    }

    fn step(&mut self, c: char, out: &mut String) {
        self.state = match self.state {
            State::Text => match c {
                '\x1b' => State::Esc,
                '\u{9b}' => State::Csi,
                '\u{9d}' => State::Osc,
                '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => State::Str,
                '\x07' => State::Text,
                _ => {
                    out.push(c);
                    State::Text
                }
            },
            State::Esc => match c {
                '[' => State::Csi,
                ']' => State::Osc,
                'P' | 'X' | '^' | '_' => State::Str,
                '\x1b' => State::Esc,
                '\x20'..='\x2f' => State::EscIntermediate,
                // A line break never belongs to a sequence: keep it, so a
                // stray ESC cannot swallow text.
                '\n' => {
                    out.push(c);
                    State::Text
                }
                // Two-character sequences (ESC 7, ESC =, ESC c, …).
                _ => State::Text,
            },
            State::EscIntermediate => match c {
                '\x20'..='\x2f' => State::EscIntermediate,
                '\n' => {
                    out.push(c);
                    State::Text
                }
                _ => State::Text,
            },
            State::Csi => match c {
                // Parameters and intermediates.
                '\x20'..='\x3f' => State::Csi,
                // The final character ends the sequence.
                '\x40'..='\x7e' => State::Text,
                '\x1b' => State::Esc,
                // Malformed: end it here and keep the character.
                _ => {
                    out.push(c);
                    State::Text
                }
            },
            State::Osc => match c {
                '\x07' | '\u{9c}' => State::Text,
                '\x1b' => State::OscEsc,
                // Titles and hyperlinks never span lines; a broken OSC must
                // not eat the rest of the output.
                '\n' => {
                    out.push(c);
                    State::Text
                }
                _ => State::Osc,
            },
            State::OscEsc => match c {
                '\\' => State::Text,
                // ESC started another sequence.
                other => {
                    self.state = State::Esc;
                    self.step(other, out);
                    return;
                }
            },
            State::Str => match c {
                '\x1b' => State::StrEsc,
                '\x07' | '\u{9c}' => State::Text,
                _ => State::Str,
            },
            State::StrEsc => match c {
                '\\' => State::Text,
                _ => State::Str,
            },
        };
    }
}

fn is_special(c: char) -> bool {
    matches!(
        c,
        '\x1b' | '\x07' | '\u{90}' | '\u{98}' | '\u{9b}' | '\u{9d}' | '\u{9e}' | '\u{9f}'
    )
}

/// Strips a complete text at once.
pub fn strip(text: &str) -> String {
    let mut s = AnsiStrip::new();
    s.push(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` one character at a time (every split point at once).
    fn by_chars(input: &str) -> String {
        let mut s = AnsiStrip::new();
        let mut out = String::new();
        let mut buf = [0u8; 4];
        for c in input.chars() {
            out += &s.push(c.encode_utf8(&mut buf));
        }
        s.finish();
        out
    }

    #[test]
    fn removes_colours_cursor_moves_titles_and_links() {
        let input = concat!(
            "\x1b[1;32m✓ passed\x1b[0m\n",
            "\x1b[2K\x1b[1Gprogress 50%\r\n",
            "\x1b]0;window title\x07after title\n",
            "\x1b]8;;https://x.test\x1b\\link\x1b]8;;\x1b\\ text\n",
            "\x1b(Bcharset \x1b=keypad \x1b7saved\x1b8\n",
            "\x1bPq#0;2;0;0;0\x1b\\dcs gone\n",
            "bell\x07 and \u{9b}31mC1 csi\u{9b}0m\n",
            "\x1b[?1004lfocus off\n",
        );
        let want = concat!(
            "✓ passed\n",
            "progress 50%\r\n",
            "after title\n",
            "link text\n",
            "charset keypad saved\n",
            "dcs gone\n",
            "bell and C1 csi\n",
            "focus off\n",
        );
        assert_eq!(strip(input), want);
        assert_eq!(by_chars(input), want);
    }

    #[test]
    fn plain_text_is_untouched_and_broken_sequences_do_not_eat_lines() {
        let text = "plain — ünïcödé [1;32m not an escape\n";
        assert_eq!(strip(text), text);
        // An OSC that never ends stops at the line break.
        assert_eq!(strip("\x1b]0;title\nnext line\n"), "\nnext line\n");
        // A stray ESC before a line break keeps the break.
        assert_eq!(strip("a\x1b\nb"), "a\nb");
        // A CSI interrupted by a non-sequence character keeps it.
        assert_eq!(strip("\x1b[12\u{e9}x"), "\u{e9}x");
    }

    #[test]
    fn a_sequence_split_between_pushes_is_removed_whole() {
        let mut s = AnsiStrip::new();
        assert_eq!(s.push("red: \x1b["), "red: ");
        assert_eq!(s.push("31"), "");
        assert_eq!(s.push("mRED\x1b"), "RED");
        assert_eq!(s.push("[0m done"), " done");
        s.finish();
        assert_eq!(s.push("x"), "x");
    }
}
