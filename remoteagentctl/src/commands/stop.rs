//! `remoteagentctl stop AGENT`: abort the agent's running session.

use remoteagent_proto::control::{AgentRequest, Request, Response};

use super::print_json;
use crate::client::Client;
use crate::error::CliError;

pub async fn run(client: &mut Client, agent: String, json: bool) -> Result<(), CliError> {
    let response = client.call(Request::Stop(AgentRequest { agent })).await?;
    if json {
        return print_json(&response);
    }
    match response {
        Response::Stopped {
            agent_id,
            session_id,
        } => {
            println!("Stopped session {session_id} of agent {agent_id}.");
            Ok(())
        }
        other => Err(CliError::error(format!("unexpected answer: {other:?}"))),
    }
}
