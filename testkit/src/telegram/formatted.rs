//! What Telegram keeps of a text once it has parsed it: the visible text,
//! cleaned and trimmed, and its entities (bold, code, links, …) with offsets
//! in UTF-16 code units. Pure functions, no I/O.
//!
//! This follows what the Bot API server does with a text (TDLib's
//! `clean_input_string` and `fix_formatted_text`):
//! * control characters other than `\n` (a tab among them) become a space,
//!   `\r` is removed, as are U+2028–U+202E and the combining marks U+030A,
//!   U+0333 and U+033F;
//! * entities lose their leading spaces and newlines, and an entity made of
//!   spaces and newlines only is dropped (a link or a custom emoji is kept);
//! * leading and trailing spaces and newlines of the text are trimmed;
//! * a text that is then empty, or made only of "empty" characters (spaces,
//!   zero-width characters, U+00A0, U+3000, …), is refused for a message
//!   and dropped for a caption.
//!
//! Entities are kept in a canonical form (overlapping or adjacent bold,
//! italic, underline, strikethrough and spoiler runs merged, then sorted), so
//! that two texts Telegram would show alike compare equal: `<b>a</b>` and
//! `<strong>a</strong>`, or `x` and `x\n`.

/// One formatting entity of a rendered text, as the Bot API's
/// `MessageEntity`: `offset` and `length` in UTF-16 code units.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entity {
    /// The Bot API type: `bold`, `italic`, `underline`, `strikethrough`,
    /// `spoiler`, `code`, `pre`, `text_link`, `custom_emoji`, `blockquote`,
    /// `expandable_blockquote`, `date_time`.
    pub kind: &'static str,
    pub offset: usize,
    pub length: usize,
    /// The entity's data: the URL of a `text_link`, the language of a `pre`,
    /// the id of a `custom_emoji`, the unix time of a `date_time`.
    pub argument: Option<String>,
}

impl Entity {
    /// The entity as the Bot API shows it in a `Message`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "type": self.kind,
            "offset": self.offset,
            "length": self.length,
        });
        if let Some(arg) = &self.argument {
            let field = match self.kind {
                "text_link" => "url",
                "pre" => "language",
                "custom_emoji" => "custom_emoji_id",
                "date_time" => "unix_time",
                _ => return v,
            };
            v[field] = serde_json::Value::String(arg.clone());
        }
        v
    }
}

/// A text as Telegram stores and shows it: visible text (cleaned, trimmed)
/// and canonical entities. Two `Rendered` are equal exactly when Telegram
/// would consider the contents the same ("message is not modified").
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Rendered {
    pub text: String,
    pub entities: Vec<Entity>,
}

/// An entity while a text is being parsed: offsets in `char`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub kind: &'static str,
    pub start: usize,
    pub end: usize,
    pub argument: Option<String>,
}

/// The text is empty once cleaned and trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EmptyText;

/// Entities that may be split and merged freely (TDLib's "splittable").
fn is_splittable(kind: &str) -> bool {
    matches!(
        kind,
        "bold" | "italic" | "underline" | "strikethrough" | "spoiler"
    )
}

/// Entities whose data is not in the text: kept even over whitespace only.
fn is_hidden_data(kind: &str) -> bool {
    matches!(kind, "text_link" | "custom_emoji" | "date_time")
}

/// Telegram trims these two only (a tab was already made a space).
fn is_trimmed_space(c: char) -> bool {
    c == ' ' || c == '\n'
}

/// What `clean_input_string` does to one character: `None` removes it.
fn clean_char(c: char) -> Option<char> {
    match c {
        '\r' => None,
        '\n' => Some('\n'),
        c if (c as u32) < 0x20 => Some(' '),
        '\u{2028}'..='\u{202E}' => None,
        '\u{030A}' | '\u{0333}' | '\u{033F}' => None,
        c => Some(c),
    }
}

/// Characters TDLib's `is_empty_string` counts as showing nothing.
fn is_empty_char(c: char) -> bool {
    matches!(
        c,
        ' ' | '\n'
            | '\u{00A0}'
            | '\u{1680}'
            | '\u{180E}'
            | '\u{2000}'..='\u{200F}'
            | '\u{202E}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{2800}'
            | '\u{3000}'
            | '\u{FEFF}'
            | '\u{FFFC}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Cleans, trims and canonicalizes a parsed text. `allow_empty` is for
/// captions: an empty result is then `Ok` with an empty text.
pub(crate) fn finish(
    text: &str,
    spans: Vec<Span>,
    allow_empty: bool,
) -> Result<Rendered, EmptyText> {
    // 1. Clean characters; `before[i]` = kept characters before original i.
    let mut kept: Vec<char> = Vec::with_capacity(text.len());
    let mut before: Vec<usize> = Vec::with_capacity(text.len() + 1);
    for c in text.chars() {
        before.push(kept.len());
        if let Some(c) = clean_char(c) {
            kept.push(c);
        }
    }
    before.push(kept.len());
    let mut spans: Vec<Span> = spans
        .into_iter()
        .map(|s| Span {
            start: before[s.start.min(before.len() - 1)],
            end: before[s.end.min(before.len() - 1)],
            ..s
        })
        .filter(|s| s.start < s.end)
        .collect();

    // 2. Entities lose leading whitespace; whitespace-only ones go.
    for s in spans.iter_mut().filter(|s| !is_hidden_data(s.kind)) {
        while s.start < s.end && is_trimmed_space(kept[s.start]) {
            s.start += 1;
        }
    }
    spans.retain(|s| {
        is_hidden_data(s.kind) || kept[s.start..s.end].iter().any(|c| !is_trimmed_space(*c))
    });

    // 3. Trim the end, then the start (up to the first entity).
    let Some(last) = kept.iter().rposition(|c| !is_trimmed_space(*c)) else {
        return if allow_empty {
            Ok(Rendered::default())
        } else {
            Err(EmptyText)
        };
    };
    kept.truncate(last + 1);
    spans.retain(|s| s.start < kept.len());
    for s in &mut spans {
        s.end = s.end.min(kept.len());
    }
    let first_entity = spans.iter().map(|s| s.start).min().unwrap_or(kept.len());
    let lead = kept[..first_entity]
        .iter()
        .take_while(|c| is_trimmed_space(**c))
        .count();
    kept.drain(..lead);
    for s in &mut spans {
        s.start -= lead;
        s.end -= lead;
    }

    if !allow_empty && kept.iter().all(|c| is_empty_char(*c)) {
        return Err(EmptyText);
    }

    // 4. Canonical entities, offsets in UTF-16 code units.
    let spans = canonical(spans);
    let mut utf16_at = Vec::with_capacity(kept.len() + 1);
    let mut units = 0;
    for c in &kept {
        utf16_at.push(units);
        units += c.len_utf16();
    }
    utf16_at.push(units);
    let mut entities: Vec<Entity> = spans
        .into_iter()
        .map(|s| Entity {
            kind: s.kind,
            offset: utf16_at[s.start],
            length: utf16_at[s.end] - utf16_at[s.start],
            argument: s.argument,
        })
        .collect();
    entities.sort_by(|a, b| {
        (a.offset, std::cmp::Reverse(a.length), a.kind, &a.argument).cmp(&(
            b.offset,
            std::cmp::Reverse(b.length),
            b.kind,
            &b.argument,
        ))
    });
    Ok(Rendered {
        text: kept.into_iter().collect(),
        entities,
    })
}

/// Merges overlapping or adjacent runs of each splittable kind and drops
/// duplicates, so that equal-looking texts have equal entity lists.
fn canonical(spans: Vec<Span>) -> Vec<Span> {
    let (mut split, rest): (Vec<Span>, Vec<Span>) =
        spans.into_iter().partition(|s| is_splittable(s.kind));
    split.sort_by(|a, b| (a.kind, a.start).cmp(&(b.kind, b.start)));
    let mut out: Vec<Span> = Vec::new();
    for s in split {
        match out.last_mut() {
            Some(prev) if prev.kind == s.kind && s.start <= prev.end => {
                prev.end = prev.end.max(s.end);
            }
            _ => out.push(s),
        }
    }
    for s in rest {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Result<Rendered, EmptyText> {
        finish(text, Vec::new(), false)
    }

    fn span(kind: &'static str, start: usize, end: usize) -> Span {
        Span {
            kind,
            start,
            end,
            argument: None,
        }
    }

    #[test]
    fn trims_spaces_and_newlines_only_at_the_ends() {
        assert_eq!(plain("\n  a b \n\n").unwrap().text, "a b");
        assert_eq!(plain("a\n\nb").unwrap().text, "a\n\nb");
        // A no-break space is not trimmed, but alone it shows nothing.
        assert_eq!(plain("\u{A0}a\u{A0}").unwrap().text, "\u{A0}a\u{A0}");
        assert_eq!(plain("\u{A0}"), Err(EmptyText));
    }

    #[test]
    fn cleans_control_characters() {
        assert_eq!(plain("a\tb\r\nc\u{7}").unwrap().text, "a b\nc");
        assert_eq!(plain("x\u{2028}y").unwrap().text, "xy");
    }

    #[test]
    fn empty_texts_are_refused_unless_allowed() {
        for text in ["", " ", "\n", "\t\r\n ", "\u{200B}", "\u{3000}\u{FEFF}"] {
            assert_eq!(plain(text), Err(EmptyText), "{text:?}");
        }
        assert_eq!(finish(" \n", Vec::new(), true), Ok(Rendered::default()));
    }

    #[test]
    fn entities_follow_the_trim_and_count_utf16() {
        // "  🚀 <b> x</b>\n" parsed: "  🚀  x\n" with bold over " x".
        let r = finish("  🚀  x\n", vec![span("bold", 4, 6)], false).unwrap();
        assert_eq!(r.text, "🚀  x");
        assert_eq!(
            r.entities,
            vec![Entity {
                kind: "bold",
                offset: 4,
                length: 1,
                argument: None
            }]
        );
    }

    #[test]
    fn whitespace_only_entities_are_dropped_and_runs_merged() {
        let r = finish("a b", vec![span("bold", 1, 2)], false).unwrap();
        assert!(r.entities.is_empty());
        let split = finish("ab", vec![span("bold", 0, 1), span("bold", 1, 2)], false).unwrap();
        let whole = finish("ab", vec![span("bold", 0, 2)], false).unwrap();
        assert_eq!(split, whole);
    }
}
