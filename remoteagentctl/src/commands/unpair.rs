//! `remoteagentctl unpair AGENT`: revoke in the cloud (best effort) and
//! forget locally.

use remoteagent_proto::control::{AgentRequest, Request, Response};

use super::{print_json, shown};
use crate::client::Client;
use crate::error::CliError;

pub async fn run(client: &mut Client, agent: String, json: bool) -> Result<(), CliError> {
    let response = client.call(Request::Unpair(AgentRequest { agent })).await?;
    if json {
        return print_json(&response);
    }
    match response {
        Response::Unpaired {
            agent_id,
            name,
            cloud_revoked,
        } => {
            println!("Unpaired '{}' ({agent_id}).", shown(&name));
            if !cloud_revoked {
                eprintln!(
                    "warning: the cloud could not be told; remove the agent in Telegram too (/agents)."
                );
            }
            Ok(())
        }
        other => Err(CliError::error(format!("unexpected answer: {other:?}"))),
    }
}
