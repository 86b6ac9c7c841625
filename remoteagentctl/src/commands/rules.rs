//! `remoteagentctl rules NAME [--revoke N]`: the agent's approval rules
//! (saved from the phone's ✅ this session / always here), as the bot's
//! `/rules` lists them, and revoking one.

use remoteagent_proto::control::{AgentRules, Request, Response, RulesRequest};

use super::{print_json, print_line, shown};
use crate::client::Client;
use crate::error::CliError;

pub async fn run(
    client: &mut Client,
    agent: String,
    revoke: Option<u32>,
    json: bool,
) -> Result<(), CliError> {
    let answer = match client
        .call(Request::Rules(RulesRequest { agent, revoke }))
        .await?
    {
        Response::Rules(answer) => answer,
        other => return Err(CliError::error(format!("unexpected answer: {other:?}"))),
    };
    if json {
        return print_json(&answer);
    }
    for line in text(&answer) {
        print_line(&line)?;
    }
    Ok(())
}

/// What is printed, line by line.
fn text(answer: &AgentRules) -> Vec<String> {
    let name = shown(&answer.agent_name);
    let mut lines = Vec::new();
    if let Some(revoked) = &answer.rules.revoked {
        lines.push(shown(revoked));
    }
    if answer.rules.rules.is_empty() {
        lines.push(format!("{name} has no approval rules."));
        return lines;
    }
    lines.push(format!(
        "Approval rules of {name} ({} allowed since the daemon started):",
        remoteagent_proto::text::plural::count(answer.auto_allowed, "tool use", "tool uses")
    ));
    for r in &answer.rules.rules {
        lines.push(format!(
            "  {:>3}  {}  ({}, {})",
            r.id,
            shown(&r.pattern),
            r.scope.words(),
            remoteagent_proto::text::plural::count(r.uses, "use", "uses")
        ));
    }
    lines.push("Revoke one with: remoteagentctl rules NAME --revoke N".into());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::rules::{RuleInfo, RulesPayload, Scope};

    #[test]
    fn rules_are_listed_with_their_numbers() {
        let answer = AgentRules {
            agent_name: "app".into(),
            rules: RulesPayload {
                rules: vec![RuleInfo {
                    id: 3,
                    pattern: "Bash(cargo test *)".into(),
                    scope: Scope::Always,
                    uses: 1,
                }],
                revoked: Some("Revoked rule 2: Bash(ls)".into()),
            },
            auto_allowed: 4,
        };
        assert_eq!(
            text(&answer),
            vec![
                "Revoked rule 2: Bash(ls)",
                "Approval rules of app (4 tool uses allowed since the daemon started):",
                "    3  Bash(cargo test *)  (always here, 1 use)",
                "Revoke one with: remoteagentctl rules NAME --revoke N",
            ]
        );
    }
}
