//! `remoteagentctl status`: the daemon's health.

use remoteagent_proto::control::{Request, Response};

use super::{print_json, shown};
use crate::client::Client;
use crate::error::CliError;

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

pub async fn run(client: &mut Client, json: bool) -> Result<(), CliError> {
    let status = match client.call(Request::Status).await? {
        Response::Status(s) => s,
        other => return Err(CliError::error(format!("unexpected answer: {other:?}"))),
    };
    if json {
        return print_json(&status);
    }
    println!("remoteagentd {} (pid {})", status.version, status.pid);
    println!("uptime:   {}", uptime(status.uptime_secs));
    println!(
        "redis:    {}",
        if status.redis_connected {
            "connected"
        } else {
            "not connected (some agents are offline)"
        }
    );
    println!(
        "agents:   {} paired, {} online, {} running a session",
        status.agents, status.agents_online, status.sessions_running
    );
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

#[cfg(test)]
mod tests {
    #[test]
    fn uptime_is_readable() {
        assert_eq!(super::uptime(5), "5s");
        assert_eq!(super::uptime(65), "1m 5s");
        assert_eq!(super::uptime(3700), "1h 1m");
        assert_eq!(super::uptime(90000), "1d 1h");
    }
}
