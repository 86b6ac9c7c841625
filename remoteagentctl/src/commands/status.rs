//! `remoteagentctl status`: the daemon's health.

use remoteagent_proto::control::{Request, Response};
use remoteagent_proto::elapsed::elapsed;

use super::{print_json, shown};
use crate::client::Client;
use crate::error::CliError;

pub async fn run(client: &mut Client, json: bool) -> Result<(), CliError> {
    let status = match client.call(Request::Status).await? {
        Response::Status(s) => s,
        other => return Err(CliError::error(format!("unexpected answer: {other:?}"))),
    };
    if json {
        return print_json(&status);
    }
    println!("remoteagentd {} (pid {})", status.version, status.pid);
    println!("uptime:   {}", elapsed(status.uptime_secs));
    println!(
        "redis:    {}",
        if status.redis_connected {
            "connected"
        } else {
            "not connected (some agents are offline)"
        }
    );
    println!(
        "agents:   {} paired, {} online, {} running",
        status.agents, status.agents_online, status.sessions_running
    );
    if status.auto_allowed > 0 {
        println!(
            "rules:    {} allowed without asking (remoteagentctl rules NAME)",
            remoteagent_proto::text::plural::count(status.auto_allowed, "tool use", "tool uses")
        );
    }
    println!("socket:   {}", status.socket.display());
    if !status.cloud_url.is_empty() {
        println!("cloud:    {}", shown(&status.cloud_url));
    }
    if let Some(problem) = &status.config_problem {
        println!("config:   {}", shown(problem));
    }
    if !status.restart_needed.is_empty() {
        println!(
            "config:   {} changed; takes effect after a restart",
            shown(&status.restart_needed.join(", "))
        );
    }
    Ok(())
}
