//! `remoteagentctl list`: the paired agents as a table (or JSON).

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use remoteagent_proto::control::{Request, Response};

use super::{print_json, short_id, shown};
use crate::client::Client;
use crate::error::CliError;

pub async fn run(client: &mut Client, json: bool) -> Result<(), CliError> {
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
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["NAME", "ID", "PATH", "RUNNER", "ONLINE", "RUNNING"]);
    for a in &agents {
        table.add_row(vec![
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
        ]);
    }
    println!("{table}");
    Ok(())
}
