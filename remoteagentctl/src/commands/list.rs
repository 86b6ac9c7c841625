//! `remoteagentctl list`: the paired agents as a table (or JSON).

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use std::io::IsTerminal;

use remoteagent_proto::control::{AgentInfo, Request, Response};

use super::{print_json, print_line, short_id, shown};
use crate::client::Client;
use crate::error::CliError;

pub async fn run(client: &mut Client, json: bool, no_headers: bool) -> Result<(), CliError> {
    let agents = match client.call(Request::List).await? {
        Response::Agents { agents } => agents,
        other => return Err(CliError::error(format!("unexpected answer: {other:?}"))),
    };
    if json {
        return print_json(&agents);
    }
    if agents.is_empty() {
        println!("No paired agents. Pair a project with `remoteagentctl pair PATH`.");
        return Ok(());
    }
    let rows = agents.iter().map(row);
    if !std::io::stdout().is_terminal() {
        // For `cut`, `awk` and `while read`: one agent a line, tab-separated,
        // no box drawing. Cleaned text has no tabs or newlines.
        if !no_headers {
            print_line(&HEADER.join("\t"))?;
        }
        for r in rows {
            print_line(&r.join("\t"))?;
        }
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    if !no_headers {
        table.set_header(HEADER.to_vec());
    }
    for r in rows {
        table.add_row(r);
    }
    println!("{table}");
    Ok(())
}

const HEADER: [&str; 6] = ["NAME", "ID", "PATH", "RUNNER", "ONLINE", "RUNNING"];

fn row(a: &AgentInfo) -> Vec<String> {
    vec![
        shown(&a.name),
        short_id(a.id.as_str()).to_string(),
        shown(&a.path.display().to_string()),
        a.runner.display_name(),
        match (&a.problem, a.online) {
            (Some(problem), _) => format!("no: {}", shown(problem)),
            (None, true) => "yes".into(),
            (None, false) => "no".into(),
        },
        a.running_session
            .as_ref()
            .map(|s| short_id(s.as_str()).to_string())
            .unwrap_or_else(|| "-".into()),
    ]
}
