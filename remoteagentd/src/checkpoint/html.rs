//! A unified diff as one self-contained HTML page (inline style, no
//! script, every character of the diff escaped), readable on a phone.

/// The page for `diff`, titled with the agent's name.
pub fn render(diff: &str, agent_name: &str) -> String {
    let mut body = String::with_capacity(diff.len() * 2);
    for line in diff.lines() {
        let class = if line.starts_with("diff --git") {
            "f"
        } else if line.starts_with("+++") || line.starts_with("---") {
            "h"
        } else if line.starts_with("@@") {
            "u"
        } else if line.starts_with('+') {
            "a"
        } else if line.starts_with('-') {
            "d"
        } else {
            "c"
        };
        body.push_str(&format!(
            "<span class=\"{class}\">{}</span>\n",
            escape(line)
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Changes by {name}</title><style>\
         body{{margin:0;background:#fff;color:#24292f}}\
         pre{{font:12px/1.45 ui-monospace,Menlo,monospace;margin:0;padding:8px;white-space:pre-wrap;word-break:break-all}}\
         span{{display:block}}.a{{background:#e6ffec;color:#116329}}.d{{background:#ffebe9;color:#82071e}}\
         .u{{color:#0550ae;background:#ddf4ff}}.f{{font-weight:bold;margin-top:1em;border-top:1px solid #ccc}}\
         .h{{color:#57606a}}\
         </style></head><body><pre>{body}</pre></body></html>\n",
        name = escape(agent_name)
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
