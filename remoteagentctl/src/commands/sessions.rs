//! `remoteagentctl sessions NAME`: the agent's recent sessions
//! (conversations with the AI) as a table, newest first, and for each the
//! command that continues it in a terminal in the project — the hand-off
//! from the phone to the computer. The same list as the bot's `/sessions`.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use remoteagent_proto::control::{AgentRequest, Request, Response};
use remoteagent_proto::elapsed::ago;
use remoteagent_proto::now_ms;
use remoteagent_proto::sessions::{AgentSessions, LocalSession};

use super::{print_json, print_line, shown};
use crate::client::Client;
use crate::error::CliError;

pub async fn run(client: &mut Client, agent: String, json: bool) -> Result<(), CliError> {
    let list = match client
        .call(Request::Sessions(AgentRequest { agent }))
        .await?
    {
        Response::Sessions(list) => list,
        other => return Err(CliError::error(format!("unexpected answer: {other:?}"))),
    };
    if json {
        return print_json(&list);
    }
    for line in text(&list, now_ms()) {
        print_line(&line)?;
    }
    Ok(())
}

const HEADER: [&str; 6] = ["#", "WHEN", "RUNS", "TURNS", "COST", "FIRST PROMPT"];

/// What is printed, line by line; `now` in ms since the epoch.
fn text(list: &AgentSessions, now: u64) -> Vec<String> {
    let name = shown(&list.agent_name);
    if list.sessions.is_empty() {
        return vec![format!(
            "{name} has no sessions yet: one begins with its first run."
        )];
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(HEADER.to_vec());
    for (n, s) in list.sessions.iter().enumerate() {
        table.add_row(row(n + 1, s, now));
    }
    let mut lines = vec![format!(
        "Sessions of {name} in {}, newest first:",
        shown(&list.path.display().to_string())
    )];
    lines.extend(table.to_string().lines().map(str::to_string));
    lines.push(String::new());
    lines.push("Continue one in a terminal:".into());
    for (n, s) in list.sessions.iter().enumerate() {
        lines.push(match &s.resume_command {
            Some(command) => format!("  #{}  {}", n + 1, shown(command)),
            None => format!(
                "  #{}  ({} cannot resume a session from a terminal)",
                n + 1,
                shown(&s.session.runner)
            ),
        });
    }
    lines
}

fn row(n: usize, s: &LocalSession, now: u64) -> Vec<String> {
    let s = &s.session;
    let runs = match s.runs {
        1 => "1 run".to_string(),
        n => format!("{n} runs"),
    };
    vec![
        format!("#{n}"),
        ago(now.saturating_sub(s.last_at_ms)),
        runs,
        s.turns.map_or("-".into(), |t| t.to_string()),
        s.cost_usd
            .map_or("-".into(), |c| format!("${:.2}", c.dollars())),
        format!("“{}”", shown(&s.first_prompt)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::AgentId;
    use remoteagent_proto::events::Usd;
    use remoteagent_proto::sessions::SessionSummary;

    #[test]
    fn the_table_and_the_commands_are_clean() {
        let session = |id: &str, runner: &str, command: Option<&str>| LocalSession {
            session: SessionSummary {
                id: id.into(),
                runner: runner.into(),
                first_prompt: "fix \u{1b}]52;c;AAAA\u{7}the tests\u{202e}".into(),
                first_at_ms: 1_000,
                last_at_ms: 61_000,
                runs: 1,
                turns: Some(3),
                cost_usd: Usd::from_dollars(0.126),
            },
            resume_command: command.map(str::to_string),
        };
        let list = AgentSessions {
            agent_id: AgentId::generate(),
            agent_name: "web\u{1b}[2J".into(),
            path: "/p".into(),
            sessions: vec![
                session("a1", "claude", Some("cd /p && claude --resume a1")),
                session("b2", "aider", None),
            ],
        };
        let out = text(&list, 121_000).join("\n");
        assert!(
            out.starts_with("Sessions of web in /p, newest first:"),
            "{out}"
        );
        assert!(out.contains("1m 0s ago"), "{out}");
        assert!(out.contains("1 run"), "{out}");
        assert!(out.contains("$0.13"), "{out}");
        assert!(out.contains("“fix the tests”"), "{out}");
        assert!(out.contains("  #1  cd /p && claude --resume a1"), "{out}");
        assert!(out.contains("  #2  (aider cannot resume"), "{out}");
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{202e}'),
            "{out}"
        );
        let empty = AgentSessions {
            sessions: Vec::new(),
            ..list
        };
        assert_eq!(
            text(&empty, 0),
            ["web has no sessions yet: one begins with its first run."]
        );
    }
}
