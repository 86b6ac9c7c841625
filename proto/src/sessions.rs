//! Sessions: the conversations an agent's runner had with the AI (Claude
//! Code's `session_id`, Codex's `thread_id`), as the daemon remembers them.
//!
//! A *run* is one prompt's execution; a *session* is a conversation that
//! one or more runs took part in. The daemon keeps the recent sessions of
//! each agent and lists them for `remoteagentctl sessions` (control socket)
//! and the bot's `/sessions` (a signed `list_sessions` command answered on
//! the output stream of its request id with `started`, `sessions`, `done`).
//! A `command` may then name one to continue (`CommandPayload.resume`).

use serde::{Deserialize, Serialize};

use crate::SessionId;
use crate::usd::Usd;

/// How many sessions the daemon remembers per agent (the newest).
pub const MAX_SESSIONS: usize = 20;
/// Longest first prompt kept with a session, in characters.
pub const MAX_FIRST_PROMPT_CHARS: usize = 120;

/// One session as the daemon remembers it. The text fields are remote
/// text (the prompt came from the phone): clean them before showing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// The runner's conversation id (passed back as `--resume <id>`).
    pub id: String,
    /// The runner's display name (`claude`, `codex`).
    pub runner: String,
    /// The start of the prompt that began it, on one line.
    #[serde(default)]
    pub first_prompt: String,
    /// When its first and its latest run started (ms since the epoch).
    pub first_at_ms: u64,
    pub last_at_ms: u64,
    /// Runs that took part in it.
    #[serde(default)]
    pub runs: u64,
    /// Turns over its runs, when the runner reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u64>,
    /// Cost over its runs, when the runner reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<Usd>,
}

/// `/sessions`: list the agent's recent sessions on the output stream of
/// `session_id` (a request id; nothing runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListSessionsPayload {
    pub session_id: SessionId,
}

/// The `sessions` output event: the answer to `list_sessions`, newest
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsPayload {
    pub sessions: Vec<SessionSummary>,
}

/// `remoteagentctl sessions NAME`: an agent's recent sessions, newest
/// first, with what resumes each in a terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSessions {
    pub agent_id: crate::AgentId,
    pub agent_name: String,
    /// The project folder (where the resume commands `cd` to).
    pub path: std::path::PathBuf,
    pub sessions: Vec<LocalSession>,
}

/// A session and the command that continues it in a terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSession {
    #[serde(flatten)]
    pub session: SessionSummary,
    /// [`resume_command`]; absent for a runner that cannot resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_command: Option<String>,
}

/// `prompt` made a session's first prompt: one line, at most
/// [`MAX_FIRST_PROMPT_CHARS`] characters (`…` marks a cut), cleaned for a
/// terminal.
pub fn first_prompt(prompt: &str) -> String {
    let line = crate::text::for_terminal_line(prompt);
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= MAX_FIRST_PROMPT_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(MAX_FIRST_PROMPT_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// A word for a shell, quoted only when it needs to be (`'…'` with `'`
/// written `'\''`).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@+,".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command that continues session `id` of runner `runner` in a
/// terminal in `project`: `cd '/path' && claude --resume <id>` (Codex:
/// `codex resume <id>`). `None` for a runner that cannot resume.
pub fn resume_command(project: &std::path::Path, runner: &str, id: &str) -> Option<String> {
    let resume = match runner {
        "claude" => format!("claude --resume {}", shell_quote(id)),
        "codex" | "codex-exec" => format!("codex resume {}", shell_quote(id)),
        _ => return None,
    };
    let dir = project.to_string_lossy();
    Some(format!("cd {} && {resume}", shell_quote(&dir)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_resume_command_quotes_the_folder() {
        assert_eq!(
            resume_command(Path::new("/home/ann/web"), "claude", "3f6d-1c2e").unwrap(),
            "cd /home/ann/web && claude --resume 3f6d-1c2e"
        );
        assert_eq!(
            resume_command(Path::new("/tmp/it's $HOME; rm -rf ~"), "codex", "t_1").unwrap(),
            r"cd '/tmp/it'\''s $HOME; rm -rf ~' && codex resume t_1"
        );
        assert_eq!(resume_command(Path::new("/p"), "aider", "x"), None);
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn a_first_prompt_is_one_short_line() {
        assert_eq!(
            first_prompt("fix\nthe  \x1b[31mtests\x1b[0m"),
            "fix the tests"
        );
        let long = "word ".repeat(100);
        let cut = first_prompt(&long);
        assert_eq!(cut.chars().count(), MAX_FIRST_PROMPT_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn summaries_read_leniently() {
        let s: SessionSummary = serde_json::from_str(
            r#"{"id":"a","runner":"claude","firstAtMs":1,"lastAtMs":2,"new":true}"#,
        )
        .unwrap();
        assert_eq!((s.runs, s.turns, s.cost_usd), (0, None, None));
    }
}
