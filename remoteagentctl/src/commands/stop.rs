//! `remoteagentctl stop AGENT`: abort the agent's running session.

use remoteagent_proto::control::{AgentRequest, Request, Response};

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
                .map(|at| {
                    format!(
                        "started {}",
                        ago(remoteagent_proto::now_ms().saturating_sub(at))
                    )
                })
                .unwrap_or_else(|| short_id(session_id.as_str()).to_string());
            println!("Stopped {who}'s session ({since}).");
            println!("Its output: remoteagentctl logs --session {session_id}");
            Ok(())
        }
        other => Err(CliError::error(format!("unexpected answer: {other:?}"))),
    }
}

/// "just now", "40 s ago", "2 min ago", "3 h ago".
fn ago(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..5 => "just now".into(),
        5..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ago_reads_like_speech() {
        assert_eq!(super::ago(1_200), "just now");
        assert_eq!(super::ago(42_000), "42 s ago");
        assert_eq!(super::ago(150_000), "2 min ago");
        assert_eq!(super::ago(3 * 3_600_000 + 5), "3 h ago");
    }
}
