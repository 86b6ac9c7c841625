//! Text for Telegram's HTML parse mode: escaping, the text a user sees, and
//! cutting long output into pages that fit one message.

/// Telegram's limit on one message, in characters after entity parsing.
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// Escapes `&`, `<`, `>` for Telegram's HTML parse mode. These three are the
/// only characters Telegram requires escaped outside tags; quotes are left
/// as they are because they only matter inside attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(ch),
        }
    }
    out
}

/// The text a user sees for `html`: tags removed, entities decoded. Used by
/// console mode; it trusts `html` to be well formed (it is ours).
pub fn html_to_text(html: &str) -> String {
    let mut stripped = String::with_capacity(html.len());
    let mut in_tag = false;
    for ch in html.chars() {
        match (in_tag, ch) {
            (false, '<') => in_tag = true,
            (true, '>') => in_tag = false,
            (false, _) => stripped.push(ch),
            (true, _) => {}
        }
    }
    html_escape::decode_html_entities(&stripped).into_owned()
}

/// Length of plain `text` as Telegram counts it against its limits: UTF-16
/// code units of the visible text (an emoji outside the BMP counts 2).
pub fn visible_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// How many bytes of `text` to put on a page that has room for `room` more
/// units (see [`visible_len`]). Returns `text.len()` when everything fits.
/// Otherwise it cuts after the last line break inside the window, provided
/// that keeps the page at least half full (`page_chars` is what the page
/// already holds, `limit` its capacity), and else at exactly `room` units
/// (or one less, never splitting a character). Because escaping happens
/// after cutting, a cut can never fall inside an entity.
pub fn fit_prefix(text: &str, room: usize, page_chars: usize, limit: usize) -> usize {
    let mut units = 0;
    let mut cut = None;
    for (i, ch) in text.char_indices() {
        let w = ch.len_utf16();
        if units + w > room {
            cut = Some(i);
            break;
        }
        units += w;
    }
    let Some(cut) = cut else {
        return text.len();
    };
    let window = &text[..cut];
    if let Some(nl) = window.rfind('\n') {
        let kept = page_chars + visible_len(&window[..=nl]);
        if kept * 2 >= limit {
            return nl + 1;
        }
    }
    seam(text, cut)
}

/// Longest step back [`seam`] takes to find a cut between two visible
/// characters.
const SEAM_BACKOFF: usize = 32;

/// A cut at or just before `cut` that falls between two characters that are
/// not whitespace. Telegram trims each message, so whitespace on either
/// side of a cut between two messages would vanish ("the | quick" shows as
/// "the" and "quick"); a cut inside a word loses nothing. Falls back to
/// `cut` when no such point is near.
fn seam(text: &str, cut: usize) -> usize {
    let mut at = cut;
    for _ in 0..SEAM_BACKOFF {
        let before = text[..at].chars().next_back();
        let after = text[at..].chars().next();
        match (before, after) {
            (Some(b), Some(a)) if !b.is_whitespace() && !a.is_whitespace() => return at,
            (Some(b), _) => at -= b.len_utf8(),
            (None, _) => break,
        }
        if at == 0 {
            break;
        }
    }
    cut
}

/// Splits `text` into pages of at most `limit` characters, on line breaks
/// where possible. Each page is returned unescaped; escape it with
/// [`escape_html`] when sending. Concatenating the pages gives `text` back.
pub fn split_pages(text: &str, limit: usize) -> Vec<&str> {
    let limit = limit.max(1);
    let mut pages = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let take = match fit_prefix(rest, limit, 0, limit) {
            // A page of one unit cannot hold a 2-unit character: take it.
            0 => rest.chars().next().map_or(rest.len(), char::len_utf8),
            n => n,
        };
        pages.push(&rest[..take]);
        rest = &rest[take..];
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_exactly_the_three_characters() {
        assert_eq!(escape_html(""), "");
        assert_eq!(escape_html("a<b>&c\"'"), "a&lt;b&gt;&amp;c\"'");
        assert_eq!(escape_html("&amp;"), "&amp;amp;");
        assert_eq!(escape_html("é中🚀<"), "é中🚀&lt;");
    }

    #[test]
    fn html_round_trips_through_the_visible_text() {
        let samples = [
            "",
            "plain",
            "<<>>&&;",
            "&lt; literally",
            "中文 & emoji 🚀 <x>",
        ];
        for s in samples {
            assert_eq!(html_to_text(&escape_html(s)), s);
            assert_eq!(html_to_text(&format!("<b>{}</b>", escape_html(s))), s);
        }
    }

    #[test]
    fn a_cut_inside_a_line_keeps_whitespace_off_the_seam() {
        // No line break in reach: the cut falls inside a word, so that
        // Telegram's trimming of each message loses no space.
        let text = "L0000455 the quick <brown> fox";
        let cut = fit_prefix(text, 13, 0, 4096);
        assert_eq!(&text[..cut], "L0000455 th");
        assert!(!text[..cut].ends_with(' ') && !text[cut..].starts_with(' '));
        // All whitespace: nothing visible to lose, cut where it fits.
        assert_eq!(fit_prefix("          ", 4, 0, 4096), 4);
        // A line break in reach still wins.
        assert_eq!(fit_prefix("ab\ncd ef gh", 8, 4096, 4096), 3);
    }

    #[test]
    fn pages_respect_the_limit_and_concatenate_back() {
        let mut text = String::new();
        for i in 0..500 {
            text.push_str(&format!("line {i}: <tag> & é中🚀\n"));
        }
        text.push_str(&"x".repeat(9000));
        text.push_str("\nend");
        let pages = split_pages(&text, MAX_MESSAGE_CHARS);
        assert_eq!(pages.concat(), text);
        for p in &pages {
            assert!(visible_len(p) <= MAX_MESSAGE_CHARS);
        }
        // Pages before the long line break after a newline.
        assert!(pages[0].ends_with('\n'));
        assert!(pages.len() >= 4);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let text = "é".repeat(10);
        let pages = split_pages(&text, 3);
        assert_eq!(pages, vec!["ééé", "ééé", "ééé", "é"]);
    }

    #[test]
    fn an_early_newline_does_not_leave_a_page_nearly_empty() {
        let text = format!("a\n{}", "b".repeat(20));
        let pages = split_pages(&text, 10);
        assert_eq!(pages[0], "a\nbbbbbbbb");
    }
}
