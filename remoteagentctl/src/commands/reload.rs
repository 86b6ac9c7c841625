//! `remoteagentctl reload`: the daemon reads its config file again (what
//! SIGHUP and `systemctl --user reload remoteagentd` do). Sent as a request
//! on the control socket rather than as a signal, so the user hears at once
//! what changed, what waits for a restart, or why the file was refused.

use remoteagent_proto::control::{Request, Response};

use super::{print_json, shown};
use crate::client::Client;
use crate::error::CliError;

pub async fn run(client: &mut Client, json: bool) -> Result<(), CliError> {
    let response = client.call(Request::Reload).await?;
    if json {
        return print_json(&response);
    }
    match response {
        Response::Reloaded {
            changed,
            restart_needed,
        } => {
            if changed.is_empty() {
                println!("Config reloaded: nothing that applies live changed.");
            } else {
                println!(
                    "Config reloaded; now in force: {}.",
                    shown(&changed.join(", "))
                );
            }
            if !restart_needed.is_empty() {
                println!(
                    "{} changed; takes effect after a restart (systemctl --user restart remoteagentd).",
                    shown(&restart_needed.join(", "))
                );
            }
            Ok(())
        }
        other => Err(CliError::error(format!("unexpected answer: {other:?}"))),
    }
}
