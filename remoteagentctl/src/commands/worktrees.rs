//! `remoteagentctl worktrees NAME [--clean]`: the git worktrees an agent
//! with `worktrees = true` ran prompts in while busy (branch, folder,
//! running or finished, age, files changed); `--clean` removes the
//! finished ones and keeps their branches, as the bot's `/clean` does.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use remoteagent_proto::control::{Request, Response};
use remoteagent_proto::elapsed::ago;
use remoteagent_proto::now_ms;
use remoteagent_proto::worktrees::{AgentWorktrees, WorktreesRequest, cleaned_text};

use super::{print_json, print_line, shown};
use crate::client::Client;
use crate::error::CliError;

pub async fn run(
    client: &mut Client,
    agent: String,
    clean: bool,
    json: bool,
) -> Result<(), CliError> {
    let list = match client
        .call(Request::Worktrees(WorktreesRequest { agent, clean }))
        .await?
    {
        Response::Worktrees(list) => list,
        other => return Err(CliError::error(format!("unexpected answer: {other:?}"))),
    };
    if json {
        return print_json(&list);
    }
    for line in text(&list, clean, now_ms()) {
        print_line(&line)?;
    }
    Ok(())
}

const HEADER: [&str; 5] = ["BRANCH", "STATE", "AGE", "CHANGED", "FOLDER"];

/// What is printed, line by line; `now` in ms since the epoch.
fn text(list: &AgentWorktrees, clean: bool, now: u64) -> Vec<String> {
    let name = shown(&list.agent_name);
    let mut lines = Vec::new();
    if clean {
        let running = list.worktrees.iter().filter(|w| w.running).count();
        lines.extend(
            cleaned_text(&name, &list.cleaned, running)
                .lines()
                .map(shown),
        );
    }
    if list.worktrees.is_empty() {
        if !clean {
            lines.push(format!("{name} has no worktrees."));
        }
        if !list.enabled {
            lines.push(format!(
                "Parallel runs are off for {name}: set worktrees = true in its [[project]] of the daemon's config.toml."
            ));
        }
        return lines;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(HEADER.to_vec());
    for w in &list.worktrees {
        table.add_row(vec![
            shown(&w.branch),
            if w.running { "running" } else { "finished" }.to_string(),
            if w.created_ms == 0 {
                "?".into()
            } else {
                ago(now.saturating_sub(w.created_ms))
            },
            w.changed_files.map_or("?".into(), |n| n.to_string()),
            shown(&w.dir),
        ]);
    }
    lines.push(format!("Worktrees of {name} ({}):", shown(&list.path)));
    lines.extend(table.to_string().lines().map(str::to_string));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::worktrees::WorktreeInfo;

    #[test]
    fn lists_branch_state_age_and_changes() {
        let list = AgentWorktrees {
            agent_name: "hello".into(),
            path: "/p".into(),
            enabled: true,
            worktrees: vec![WorktreeInfo {
                branch: "ra/hello/ab12cd".into(),
                dir: "/s/wt/ab12cd".into(),
                running: false,
                created_ms: 1_000,
                changed_files: Some(2),
            }],
            cleaned: Vec::new(),
        };
        let out = text(&list, false, 61_000).join("\n");
        assert!(out.starts_with("Worktrees of hello (/p):"), "{out}");
        assert!(
            out.contains("ra/hello/ab12cd") && out.contains("finished") && out.contains(" ago"),
            "{out}"
        );
        let none = AgentWorktrees {
            worktrees: vec![],
            enabled: false,
            ..list
        };
        let out = text(&none, false, 0).join("\n");
        assert!(
            out.contains("hello has no worktrees.") && out.contains("worktrees = true"),
            "{out}"
        );
    }
}
