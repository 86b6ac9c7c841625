//! `remoteagentctl doctor`: one check per line, ✔ or ✖, each ✖ with the
//! command or edit that fixes it; non-zero exit when anything failed.
//!
//! Unlike the other commands it runs when the daemon does not: "is the
//! daemon running" is its first question. What only the daemon can check
//! (its config file, its secret store, the cloud from where it runs, each
//! agent's Redis login and runner) comes from `Request::Doctor`; the rest
//! (the daemon answers, versions, the login service) is checked here.

use std::path::Path;

use remoteagent_proto::control::{Check, CheckStatus, Request, Response};

use super::{print_json, print_line, shown};
use crate::client::Client;
use crate::error::CliError;

const CTL_VERSION: &str = env!("CARGO_PKG_VERSION");

pub async fn run(socket: &Path, json: bool) -> Result<(), CliError> {
    let mut checks = daemon_checks(socket).await;
    checks.extend(login_service());
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
            "{} failed; each ✖ says how to fix it",
            remoteagent_proto::text::plural::count(n as u64, "check", "checks")
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
                "start it: `remoteagentctl service start` (through the login service when it is installed, else `remoteagentd --daemonize`); `remoteagentctl service install` starts it at every login",
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
/// unless the service is installed and not active. The cloud's unit (the
/// self-hosted cloud `remoteagentctl setup` installs) is checked when it is
/// installed.
fn login_service() -> Vec<Check> {
    use crate::service::{Env, Manager, Platform, Unit, unit_status};
    const NAME: &str = "login service";
    let env = match Env::detect() {
        Ok(env) => env,
        Err(e) => {
            return vec![Check::warn(
                NAME,
                format!("cannot tell: {e:#}"),
                "install remoteagentd beside remoteagentctl, then `remoteagentctl service install`",
            )];
        }
    };
    let platform = Platform::current();
    let daemon = unit_status(platform, Unit::Daemon, &env);
    if let Manager::Missing(why) = &daemon.manager {
        // Nothing can be asked about the cloud's unit either.
        let installed = if daemon.installed {
            format!(" (its unit is installed at {})", daemon.path.display())
        } else {
            String::new()
        };
        return vec![Check::warn(
            NAME,
            format!(
                "no service manager: {why}; remoteagentd does not start at login by itself{installed}"
            ),
            "start it after each login with `remoteagentctl service start` (runs `remoteagentd --daemonize`)",
        )];
    }
    let mut checks = vec![unit_check(NAME, &daemon)];
    let cloud = unit_status(platform, Unit::Cloud, &env);
    if cloud.installed {
        checks.push(unit_check("login service (cloud)", &cloud));
    }
    checks
}

/// One unit the service manager answered about.
fn unit_check(name: &str, status: &crate::service::UnitStatus) -> Check {
    use crate::service::{Platform, Unit};
    let unit = status.unit.name();
    if status.is_active() {
        return Check::ok(
            name,
            format!("{unit} is active ({})", status.platform.name()),
        );
    }
    if !status.installed {
        return Check::warn(
            name,
            format!(
                "{} is not installed as a login service: it will not start at login",
                status.unit.binary()
            ),
            format!("remoteagentctl service install{}", status.unit.flag()),
        );
    }
    let log = match (status.platform, status.unit) {
        (Platform::Systemd, _) => format!("journalctl --user -u {unit}"),
        (Platform::Launchd, Unit::Daemon) => "~/Library/Logs/remoteagent/remoteagentd.log".into(),
        (Platform::Launchd, Unit::Cloud) => {
            "~/Library/Logs/remoteagent/remoteagent-cloud.log".into()
        }
    };
    Check::fail(
        name,
        format!("{unit} is installed but {}", status.active),
        format!(
            "remoteagentctl service restart{}; its log: {log}",
            status.unit.flag()
        ),
    )
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
