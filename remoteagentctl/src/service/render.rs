//! The unit files and LaunchAgents, filled in for this user: the templates
//! in `systemd/` and `launchd/` with their `@PLACEHOLDERS@` replaced, quoted
//! and escaped the way systemd and plist XML read them.

use std::path::PathBuf;

use super::{Env, Unit};

pub const DAEMON_UNIT: &str = include_str!("../../../systemd/remoteagentd.service");
pub const CLOUD_UNIT: &str = include_str!("../../../systemd/remoteagent-cloud.service");
pub const DAEMON_PLIST: &str = include_str!("../../../launchd/dev.remoteagent.remoteagentd.plist");
pub const CLOUD_PLIST: &str = include_str!("../../../launchd/dev.remoteagent.cloud.plist");

/// Where the LaunchAgents write their output.
pub fn launchd_log_dir(env: &Env) -> PathBuf {
    env.home.join("Library/Logs/remoteagent")
}

/// The binary `unit` runs. Without a `remoteagent-cloud` found, the one
/// beside remoteagentd is named (the place packages put it): installing then
/// fails loudly in systemd rather than with a unit that has no program.
pub fn program(unit: Unit, env: &Env) -> PathBuf {
    match unit {
        Unit::Daemon => env.daemon.clone(),
        Unit::Cloud => env
            .cloud
            .clone()
            .unwrap_or_else(|| env.daemon.with_file_name("remoteagent-cloud")),
    }
}

/// The systemd unit with paths (and the daemon's PATH) filled in. `%` is a
/// specifier in unit files, so it is doubled.
pub fn render_unit(unit: Unit, env: &Env) -> String {
    let exec = systemd_quote(&program(unit, env).to_string_lossy());
    match unit {
        Unit::Daemon => DAEMON_UNIT
            .replace("ExecStart=@EXEC@", &format!("ExecStart={exec}"))
            .replace(
                "Environment=PATH=@PATH@",
                &format!("Environment=\"PATH={}\"", systemd_escape(&env.path)),
            ),
        Unit::Cloud => CLOUD_UNIT.replace(
            "ExecStart=@EXEC@ --config @CONFIG@ serve",
            &format!(
                "ExecStart={exec} --config {} serve",
                systemd_quote_arg(&env.cloud_config.to_string_lossy())
            ),
        ),
    }
}

pub fn render_plist(unit: Unit, env: &Env) -> String {
    let template = match unit {
        Unit::Daemon => DAEMON_PLIST,
        Unit::Cloud => CLOUD_PLIST,
    };
    template
        .replace("@EXEC@", &xml_escape(&program(unit, env).to_string_lossy()))
        .replace("@CONFIG@", &xml_escape(&env.cloud_config.to_string_lossy()))
        .replace("@PATH@", &xml_escape(&env.path))
        .replace(
            "@LOGDIR@",
            &xml_escape(&launchd_log_dir(env).to_string_lossy()),
        )
}

fn systemd_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
}

/// The program of a systemd command line, whatever it contains (spaces,
/// quotes, `%`). systemd expands no variables in the program's path.
fn systemd_quote(s: &str) -> String {
    format!("\"{}\"", systemd_escape(s))
}

/// An argument after the program: there `$NAME` would be replaced by an
/// environment variable, so `$` is doubled as well.
fn systemd_quote_arg(s: &str) -> String {
    format!("\"{}\"", systemd_escape(s).replace('$', "$$"))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
