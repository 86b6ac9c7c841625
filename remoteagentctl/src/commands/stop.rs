//! `remoteagentctl stop AGENT`: abort the agent's run.

use remoteagent_proto::control::{AgentRequest, Request, Response};
use remoteagent_proto::elapsed::ago;
use remoteagent_proto::now_ms;

use super::{print_json, short_id, shown};
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
            agent_name,
            started_at_ms,
        } => {
            let who = if agent_name.is_empty() {
                format!("agent {}", short_id(agent_id.as_str()))
            } else {
                shown(&agent_name)
            };
            let since = started_at_ms
                .map(|at| format!("started {}", ago(now_ms().saturating_sub(at))))
                .unwrap_or_else(|| short_id(session_id.as_str()).to_string());
            println!("Stopped {who}'s run ({since}).");
            println!("Its output: remoteagentctl logs --run {session_id}");
            Ok(())
        }
        other => Err(CliError::error(format!("unexpected answer: {other:?}"))),
    }
}
