//! Telegram's HTML parse mode: HTML in, text and entities out, or the
//! detail Telegram gives after "can't parse entities: ". Pure, no I/O.
//!
//! A port of the rules of TDLib's `parse_html` (the Bot API server's
//! parser), with its error texts: the supported tags only, attributes as
//! `name="value"`, `name='value'` or a bare name token, the entities `&lt;`,
//! `&gt;`, `&amp;`, `&quot;` and numeric ones (`&#60;`, `&#x3C;`; the `;` is
//! optional), any other `&` kept literally, every tag closed in order.

use super::formatted::Span;

/// Tags Telegram's HTML parse mode accepts.
const TAGS: &[&str] = &[
    "a",
    "b",
    "strong",
    "i",
    "em",
    "s",
    "strike",
    "del",
    "u",
    "ins",
    "span",
    "tg-spoiler",
    "tg-emoji",
    "pre",
    "code",
    "blockquote",
    "tg-time",
];

/// A parsed text before Telegram's cleaning and trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub text: String,
    /// Offsets in `char`s of `text`.
    pub spans: Vec<Span>,
}

/// Converts Telegram HTML to the text it shows, tags stripped and entities
/// decoded, or the error detail Telegram gives. The text is not yet cleaned
/// or trimmed: [`super::rules::check_message_text`] gives what Telegram
/// stores.
pub fn html_to_text(html: &str) -> Result<String, String> {
    parse(html).map(|p| p.text)
}

/// TDLib's `is_space`: the end of the input counts as one.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0 | 0x0b)
}

struct Open {
    tag: String,
    argument: String,
    expandable: bool,
    /// Offset in chars of the text where the tag's content starts.
    start: usize,
    /// Byte length of the text where the tag's content starts.
    start_byte: usize,
}

pub(crate) fn parse(html: &str) -> Result<Parsed, String> {
    let b = html.as_bytes();
    // TDLib reads a NUL-terminated string: past the end reads 0.
    let at = |i: usize| -> u8 { b.get(i).copied().unwrap_or(0) };
    let mut text = String::with_capacity(html.len());
    let mut chars = 0usize;
    let mut spans: Vec<Span> = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'&'
            && let Some((ch, next)) = decode_entity(b, i)?
        {
            text.push(ch);
            chars += 1;
            i = next;
            continue;
        }
        if b[i] != b'<' {
            let ch = next_char(html, i);
            text.push(ch);
            chars += 1;
            i += ch.len_utf8();
            continue;
        }
        let begin = i;
        i += 1;
        if at(i) != b'/' {
            // A start tag.
            while !is_space(at(i)) && at(i) != b'>' {
                i += 1;
            }
            if at(i) == 0 {
                return Err(format!("Unclosed start tag at byte offset {begin}"));
            }
            let tag = html[begin + 1..i].to_ascii_lowercase();
            if !TAGS.contains(&tag.as_str()) {
                return Err(format!(
                    "Unsupported start tag \"{tag}\" at byte offset {begin}"
                ));
            }
            let mut argument = String::new();
            let mut expandable = false;
            while at(i) != b'>' {
                while at(i) != 0 && is_space(at(i)) {
                    i += 1;
                }
                if at(i) == b'>' {
                    break;
                }
                let name_begin = i;
                while !is_space(at(i)) && at(i) != b'=' {
                    i += 1;
                }
                let name = &html[name_begin..i];
                if name.is_empty() {
                    return Err(format!(
                        "Empty attribute name in the tag \"{tag}\" at byte offset {begin}"
                    ));
                }
                if tag == "blockquote" && name == "expandable" {
                    expandable = true;
                    continue;
                }
                while at(i) != 0 && is_space(at(i)) {
                    i += 1;
                }
                if at(i) != b'=' {
                    return Err(format!(
                        "Expected equal sign in declaration of an attribute of the tag \"{tag}\" at byte offset {begin}"
                    ));
                }
                i += 1;
                while at(i) != 0 && is_space(at(i)) {
                    i += 1;
                }
                if at(i) == 0 {
                    return Err(format!(
                        "Unclosed start tag \"{tag}\" at byte offset {begin}"
                    ));
                }
                let value = if at(i) != b'\'' && at(i) != b'"' {
                    // A name token: letters, digits, periods, hyphens.
                    let token_begin = i;
                    while at(i).is_ascii_alphanumeric() || at(i) == b'.' || at(i) == b'-' {
                        i += 1;
                    }
                    if !is_space(at(i)) && at(i) != b'>' {
                        return Err(format!(
                            "Unexpected end of name token at byte offset {token_begin}"
                        ));
                    }
                    html[token_begin..i].to_ascii_lowercase()
                } else {
                    let quote = at(i);
                    i += 1;
                    let mut value = String::new();
                    while i < b.len() && b[i] != quote {
                        if b[i] == b'&'
                            && let Some((ch, next)) = decode_entity(b, i)?
                        {
                            value.push(ch);
                            i = next;
                            continue;
                        }
                        let ch = next_char(html, i);
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                    if at(i) == quote {
                        i += 1;
                    }
                    value
                };
                if at(i) == 0 {
                    return Err(format!("Unclosed start tag at byte offset {begin}"));
                }
                match (tag.as_str(), name) {
                    ("a", "href")
                    | ("span", "class")
                    | ("tg-emoji", "emoji-id")
                    | ("tg-time", "unix") => argument = value,
                    ("code", "class") if value.starts_with("language-") => {
                        argument = value["language-".len()..].to_string();
                    }
                    _ => {}
                }
            }
            if tag == "span" && argument != "tg-spoiler" {
                return Err(format!(
                    "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
                ));
            }
            open.push(Open {
                tag,
                argument,
                expandable,
                start: chars,
                start_byte: text.len(),
            });
            i += 1;
            continue;
        }

        // An end tag.
        let Some(top) = open.pop() else {
            return Err(format!("Unexpected end tag at byte offset {begin}"));
        };
        while !is_space(at(i)) && at(i) != b'>' {
            i += 1;
        }
        let end_name = &html[begin + 2..i];
        while at(i) != 0 && is_space(at(i)) {
            i += 1;
        }
        if at(i) != b'>' {
            return Err(format!("Unclosed end tag at byte offset {begin}"));
        }
        i += 1;
        if !end_name.is_empty() && end_name != top.tag {
            return Err(format!(
                "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{end_name}>\"",
                top.tag
            ));
        }
        if chars > top.start {
            close_entity(&mut spans, top, chars, &text)?;
        }
    }
    if let Some(top) = open.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            top.tag
        ));
    }
    // Only `pre` keeps a language; `code` forgets its class.
    for s in spans.iter_mut().filter(|s| s.kind == "code") {
        s.argument = None;
    }
    Ok(Parsed { text, spans })
}

/// The entity a closed tag makes over `top.start..end` (in chars).
fn close_entity(spans: &mut Vec<Span>, top: Open, end: usize, text: &str) -> Result<(), String> {
    let start = top.start;
    let plain = |kind: &'static str| Span {
        kind,
        start,
        end,
        argument: None,
    };
    let same_range = |s: &Span| s.start == start && s.end == end;
    let span = match top.tag.as_str() {
        "i" | "em" => plain("italic"),
        "b" | "strong" => plain("bold"),
        "s" | "strike" | "del" => plain("strikethrough"),
        "u" | "ins" => plain("underline"),
        "tg-spoiler" | "span" => plain("spoiler"),
        "blockquote" if top.expandable => plain("expandable_blockquote"),
        "blockquote" => plain("blockquote"),
        "a" => {
            let url = if top.argument.is_empty() {
                text[top.start_byte..].to_string()
            } else {
                top.argument
            };
            // An invalid link leaves the text without an entity.
            let Some(url) = checked_url(&url) else {
                return Ok(());
            };
            Span {
                argument: Some(url),
                ..plain("text_link")
            }
        }
        "pre" => {
            // `<pre><code class="language-x">…</code></pre>`: one `pre`
            // entity with a language.
            if let Some(last) = spans.last_mut()
                && last.kind == "code"
                && same_range(last)
                && last.argument.as_ref().is_some_and(|a| !a.is_empty())
            {
                last.kind = "pre";
                return Ok(());
            }
            plain("pre")
        }
        "code" => {
            if let Some(last) = spans.last_mut()
                && last.kind == "pre"
                && same_range(last)
                && !top.argument.is_empty()
            {
                last.argument = Some(top.argument);
                return Ok(());
            }
            Span {
                argument: (!top.argument.is_empty()).then_some(top.argument),
                ..plain("code")
            }
        }
        "tg-emoji" => match top.argument.parse::<i64>() {
            Ok(id) if id != 0 => Span {
                argument: Some(id.to_string()),
                ..plain("custom_emoji")
            },
            _ => return Err("Invalid custom emoji identifier specified".into()),
        },
        "tg-time" => match top.argument.parse::<i64>() {
            Ok(unix) => Span {
                argument: Some(unix.to_string()),
                ..plain("date_time")
            },
            Err(_) => return Ok(()),
        },
        _ => return Ok(()),
    };
    spans.push(span);
    Ok(())
}

/// A link Telegram would accept (roughly TDLib's `check_url`): a scheme it
/// knows, or a bare host with a dot.
fn checked_url(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() || url.chars().any(char::is_whitespace) {
        return None;
    }
    let lower = url.to_ascii_lowercase();
    let known = ["http://", "https://", "tg://", "ton://", "tonsite://"];
    if known.iter().any(|s| lower.starts_with(s)) {
        return Some(url.to_string());
    }
    if !lower.contains("://") && url.contains('.') {
        return Some(format!("http://{url}"));
    }
    None
}

fn next_char(s: &str, i: usize) -> char {
    // `i` is always at a char boundary: the parser only steps over ASCII
    // bytes or whole chars.
    s[i..].chars().next().unwrap_or('\u{FFFD}')
}

/// TDLib's `decode_html_entity` at `b[pos] == '&'`: the character and the
/// position after the entity, or `None` when it is kept literally.
fn decode_entity(b: &[u8], pos: usize) -> Result<Option<(char, usize)>, String> {
    let at = |i: usize| -> u8 { b.get(i).copied().unwrap_or(0) };
    let mut end = pos + 1;
    let code: u64;
    if at(pos + 1) == b'#' {
        end += 1;
        let mut res: u64 = 0;
        if at(pos + 2) == b'x' {
            end += 1;
            while at(end).is_ascii_hexdigit() {
                let digit = (at(end) as char).to_digit(16).unwrap_or(0) as u64;
                res = res.saturating_mul(16).saturating_add(digit);
                end += 1;
            }
        } else {
            while at(end).is_ascii_digit() {
                res = res
                    .saturating_mul(10)
                    .saturating_add(u64::from(at(end) - b'0'));
                end += 1;
            }
        }
        if res == 0 || res >= 0x10ffff || end - pos >= 10 {
            return Ok(None);
        }
        code = res;
    } else {
        while at(end).is_ascii_alphabetic() {
            end += 1;
        }
        code = match &b[pos + 1..end] {
            b"lt" => '<' as u64,
            b"gt" => '>' as u64,
            b"amp" => '&' as u64,
            b"quot" => '"' as u64,
            _ => return Ok(None),
        };
    }
    let Some(ch) = char::from_u32(code as u32) else {
        return Err(
            "Text contains invalid Unicode characters after decoding HTML entities, \
                    check for unmatched surrogate code units"
                .into(),
        );
    };
    let next = if at(end) == b';' { end + 1 } else { end };
    Ok(Some((ch, next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_entities() {
        let p = parse("<b>a</b> &lt;x&gt; &amp; &#233;&#x4E2D; R&D &amp &Or;").unwrap();
        assert_eq!(p.text, "a <x> & é中 R&D & &Or;");
        assert_eq!(
            p.spans,
            vec![Span {
                kind: "bold",
                start: 0,
                end: 1,
                argument: None
            }]
        );
        let p = parse("<pre><code class=\"language-rust\">fn</code></pre>").unwrap();
        assert_eq!(p.spans.len(), 1);
        assert_eq!(p.spans[0].kind, "pre");
        assert_eq!(p.spans[0].argument.as_deref(), Some("rust"));
        assert_eq!(
            parse("<a href=\"https://x.org\">l</a>").unwrap().spans[0].argument,
            Some("https://x.org".into())
        );
        // An empty tag makes no entity.
        assert!(parse("<b></b>x").unwrap().spans.is_empty());
    }

    #[test]
    fn errors_carry_telegrams_details() {
        let cases = [
            ("a < b", "Unsupported start tag \"\" at byte offset 2"),
            ("x <b", "Unclosed start tag at byte offset 2"),
            (
                "<b>open",
                "Can't find end tag corresponding to start tag \"b\"",
            ),
            (
                "<script>x</script>",
                "Unsupported start tag \"script\" at byte offset 0",
            ),
            (
                "<b>x</i>",
                "Unmatched end tag at byte offset 4, expected \"</b>\", found \"</i>\"",
            ),
            ("x</b>", "Unexpected end tag at byte offset 1"),
            ("<b>x</b", "Unclosed end tag at byte offset 4"),
            (
                "<a href>x</a>",
                "Expected equal sign in declaration of an attribute of the tag \"a\" at byte offset 0",
            ),
            (
                "<span>x</span>",
                "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0",
            ),
        ];
        for (html, detail) in cases {
            assert_eq!(parse(html).unwrap_err(), detail, "{html:?}");
        }
    }
}
