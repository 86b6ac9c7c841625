//! The matching of `allow_tools` entries (and rules) against a tool use,
//! and the verdict a decision gives. Its own module so that `policy` (which
//! holds the danger list) and `danger` (which matches its entries) both use
//! it without depending on each other.
//!
//! An entry is a tool name (`"Read"`) or a name with a pattern on the tool's
//! main argument (`"Bash(cargo test*)"`); see `policy`'s documentation for
//! the two guards.

use std::path::{Component, Path};

use serde_json::Value;
/// The keys whose value is a tool's main argument, in order of preference.
const MAIN_ARGS: &[&str] = &[
    "command",
    "file_path",
    "notebook_path",
    "path",
    "pattern",
    "url",
];
/// Keys that hold a path (where `..` is refused).
pub(crate) const PATH_ARGS: &[&str] = &["file_path", "notebook_path", "path"];
/// Characters a `*` of a `Bash(...)` entry never matches.
pub(crate) const SHELL_CONTROL: &[char] = &[';', '&', '|', '<', '>', '$', '`', '\n', '\r'];

/// One parsed `allow_tools` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRule {
    pub tool: String,
    /// The pattern on the main argument; `None` allows every use of the tool.
    pub pattern: Option<String>,
}

impl ToolRule {
    /// Parses `Name` or `Name(pattern)`; the error says what is wrong.
    pub fn parse(entry: &str) -> Result<ToolRule, String> {
        let entry = entry.trim();
        let (tool, pattern) = match entry.find('(') {
            Some(open) => {
                let Some(inner) = entry[open + 1..].strip_suffix(')') else {
                    return Err(format!(
                        "'{entry}' has a '(' without a closing ')' at its end"
                    ));
                };
                if inner.is_empty() {
                    return Err(format!(
                        "'{entry}' has an empty pattern; write just the tool name to allow every use"
                    ));
                }
                (&entry[..open], Some(inner.to_string()))
            }
            None => (entry, None),
        };
        if tool.is_empty() {
            return Err(format!("'{entry}' names no tool"));
        }
        if !tool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(format!(
                "'{entry}': a tool name has only letters, digits, '_', '-' and '.' (like Bash or mcp__github__get_issue)"
            ));
        }
        Ok(ToolRule {
            tool: tool.to_string(),
            pattern,
        })
    }

    /// Whether this entry allows `tool` with `input`.
    pub fn matches(&self, tool: &str, input: &Value) -> bool {
        if self.tool != tool {
            return false;
        }
        let Some(pattern) = &self.pattern else {
            return true;
        };
        let Some((key, arg)) = main_arg(tool, input) else {
            return false;
        };
        if PATH_ARGS.contains(&key)
            && Path::new(arg)
                .components()
                .any(|c| c == Component::ParentDir)
        {
            return false;
        }
        let star_may_match = |c: char| tool != "Bash" || !SHELL_CONTROL.contains(&c);
        glob_match(pattern, arg, &star_may_match)
    }
}

/// The main argument of a tool use: (key, value). The search tools' main
/// argument is their pattern, not the folder they search in.
pub fn main_arg<'a>(tool: &str, input: &'a Value) -> Option<(&'static str, &'a str)> {
    let get = |k: &'static str| input.get(k).and_then(Value::as_str).map(|v| (k, v));
    if matches!(tool, "Grep" | "Glob")
        && let Some(found) = get("pattern")
    {
        return Some(found);
    }
    MAIN_ARGS.iter().find_map(|k| get(k))
}

/// `*`-only glob matching over characters; `star_may_match` says which
/// characters a `*` may stand for.
pub(crate) fn glob_match(pattern: &str, text: &str, star_may_match: &dyn Fn(char) -> bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // reach[j]: the pattern so far can match the first j characters of text.
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        if pc == '*' {
            for j in 0..=t.len() {
                next[j] = reach[j] || (j > 0 && next[j - 1] && star_may_match(t[j - 1]));
            }
        } else {
            for j in 1..=t.len() {
                next[j] = reach[j - 1] && t[j - 1] == pc;
            }
        }
        reach = next;
    }
    reach[t.len()]
}

/// What the policy says about one tool use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Listed in `allow_tools`, or the policy is `allow`.
    Allow,
    /// The policy is `deny`.
    Deny,
    /// The policy is `ask`: the phone decides.
    Ask,
}
