//! `remoteagentctl doctor`: one check per line, ✔ or ✖, each ✖ with the
//! command or edit that fixes it; non-zero exit when anything failed.
//!
//! Unlike the other commands it runs when the daemon does not: "is the
//! daemon running" is its first question. What only the daemon can check
//! (its config file, its secret store, the cloud from where it runs, each
//! agent's Redis login and runner) comes from `Request::Doctor`; the rest
//! (the daemon answers, versions, the login service) is checked here.

use std::path::Path;
use std::process::Command;

use remoteagent_proto::control::{Check, CheckStatus, Request, Response};

use super::{print_json, print_line, shown};
use crate::client::Client;
use crate::error::CliError;

const CTL_VERSION: &str = env!("CARGO_PKG_VERSION");

pub async fn run(socket: &Path, json: bool) -> Result<(), CliError> {
    let mut checks = daemon_checks(socket).await;
    checks.push(login_service());
    if json {
        let ok = !checks.iter().any(|c| c.status == CheckStatus::Fail);
        print_json(&serde_json::json!({"ok": ok, "checks": checks}))?;
    } else {
        for check in &checks {
            print_line(&line(check))?;
        }
    }
    let failed = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .count();
    match failed {
        0 => Ok(()),
        n => Err(CliError::error(format!(
            "{n} check(s) failed; each ✖ says how to fix it"
        ))),
    }
}

async fn daemon_checks(socket: &Path) -> Vec<Check> {
    const NAME: &str = "daemon";
    let mut client = match Client::connect(socket).await {
        Ok(client) => client,
        Err(e) => {
            return vec![Check::fail(
                NAME,
                e.to_string(),
                "start it: `remoteagentctl service install` (and at every login), or `remoteagentd --daemonize`",
            )];
        }
    };
    let version = client.daemon_version().to_string();
    let mut checks = vec![if version == CTL_VERSION {
        Check::ok(
            NAME,
            format!("remoteagentd {version} answers on {}", socket.display()),
        )
    } else {
        Check::fail(
            NAME,
            format!("remoteagentd is {version}, remoteagentctl is {CTL_VERSION}"),
            "install one version of both, then restart the daemon",
        )
    }];
    match client.call(Request::Doctor).await {
        Ok(Response::Doctor { checks: theirs }) => checks.extend(theirs),
        Ok(other) => checks.push(Check::fail(
            "daemon checks",
            format!("unexpected answer: {other:?}"),
            "install one version of remoteagentd and remoteagentctl",
        )),
        Err(e) => checks.push(Check::fail(
            "daemon checks",
            e.to_string(),
            "install one version of remoteagentd and remoteagentctl",
        )),
    }
    checks
}

/// Is the daemon a login service, so it is there after the next reboot?
/// Not required (`remoteagentd --daemonize` works too): a warning at most,
/// unless the service is installed and failing.
fn login_service() -> Check {
    const NAME: &str = "login service";
    if cfg!(target_os = "macos") {
        return match Command::new("launchctl")
            .args([
                "print",
                &format!(
                    "gui/{}/{}",
                    nix::unistd::getuid().as_raw(),
                    crate::service::LAUNCHD_LABEL
                ),
            ])
            .output()
        {
            Ok(out) if out.status.success() => Check::ok(NAME, "the LaunchAgent is loaded"),
            _ => Check::warn(
                NAME,
                "remoteagentd is not a LaunchAgent: it will not start at login",
                "remoteagentctl service install",
            ),
        };
    }
    let state = Command::new("systemctl")
        .args(["--user", "is-active", crate::service::UNIT_NAME])
        .output();
    let installed = crate::service::Env::detect()
        .map(|env| crate::service::unit_path(&env).exists())
        .unwrap_or(false);
    match state {
        Err(_) => Check::warn(
            NAME,
            "no systemctl here: remoteagentd does not start at login by itself",
            "start it after login with `remoteagentd --daemonize`",
        ),
        Ok(out) => {
            let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
            match (answer.as_str(), installed) {
                ("active", _) => {
                    Check::ok(NAME, format!("{} is active", crate::service::UNIT_NAME))
                }
                (_, false) => Check::warn(
                    NAME,
                    "remoteagentd is not installed as a login service: it will not start at login",
                    "remoteagentctl service install",
                ),
                ("", true) => Check::warn(
                    NAME,
                    "the unit is installed, but systemd cannot be asked (no user session?)",
                    "log in on a desktop or run `loginctl enable-linger` so `systemctl --user` works",
                ),
                (state, true) => Check::fail(
                    NAME,
                    format!("{} is installed but {state}", crate::service::UNIT_NAME),
                    format!(
                        "systemctl --user restart {0}; its log: journalctl --user -u {0}",
                        crate::service::UNIT_NAME
                    ),
                ),
            }
        }
    }
}

fn line(check: &Check) -> String {
    let (mark, fix) = match check.status {
        CheckStatus::Ok => ("✔", None),
        CheckStatus::Warn => ("!", check.fix.as_deref()),
        CheckStatus::Fail => ("✖", check.fix.as_deref()),
    };
    // The daemon's details may carry remote text (names, cloud answers).
    let mut text = format!("{mark} {}: {}", shown(&check.name), shown(&check.detail));
    if let Some(fix) = fix {
        text.push_str(&format!("\n    fix: {}", shown(fix)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_carries_its_fix_on_the_next_line() {
        let ok = Check::ok("cloud", "healthy");
        assert_eq!(line(&ok), "✔ cloud: healthy");
        let bad = Check::fail("redis login of web", "refused", "pair it again");
        assert_eq!(
            line(&bad),
            "✖ redis login of web: refused\n    fix: pair it again"
        );
        let odd = Check::warn("name\u{1b}[2J", "x", "y");
        assert!(!line(&odd).contains('\u{1b}'));
    }
}
