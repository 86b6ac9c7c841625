//! `remoteagentctl man --out DIR`: one page for the command and one per
//! visible subcommand (`remoteagentctl-pair.1`), the main page with an
//! ENVIRONMENT section ([`ENV_VARS`]).

use std::path::Path;

use anyhow::Context;

/// The environment variables remoteagentctl reads (README.md lists them
/// too; a test checks).
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "TELEGRAM_API_BASE",
        "setup: the Telegram Bot API it checks the token with (default https://api.telegram.org; tests point it at a fake)",
    ),
    (
        "XDG_STATE_HOME",
        "setup: where a cloud it starts without a service manager logs (remoteagent/cloud.log) and keeps its pid",
    ),
    (
        "REMOTEAGENT_SOCKET",
        "the daemon's control socket, as --socket (default $XDG_RUNTIME_DIR/remoteagent/remoteagentd.sock)",
    ),
    (
        "XDG_RUNTIME_DIR",
        "where the default control socket is, remoteagent/remoteagentd.sock",
    ),
    (
        "TMPDIR",
        "without XDG_RUNTIME_DIR, the socket is in $TMPDIR/remoteagent-UID/",
    ),
    (
        "HOME",
        "where `service install` writes the systemd unit or LaunchAgent",
    ),
    (
        "XDG_CONFIG_HOME",
        "where `service install` writes the systemd user unit (systemd/user/)",
    ),
    (
        "PATH",
        "recorded in the service by `service install`, so the daemon finds the AI CLIs",
    ),
];

pub fn write_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("writing man pages to {}", dir.display()))?;
    let main = dir.join("remoteagentctl.1");
    let page =
        std::fs::read_to_string(&main).with_context(|| format!("reading {}", main.display()))?;
    let page = insert_before_version(&page, &section("ENVIRONMENT", ENV_VARS));
    std::fs::write(&main, page).with_context(|| format!("writing {}", main.display()))?;
    Ok(())
}

/// A `.SH` section of tagged paragraphs.
fn section(title: &str, entries: &[(&str, &str)]) -> String {
    let mut text = format!(".SH {title}\n");
    for (tag, body) in entries {
        text.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", escape(tag), escape(body)));
    }
    text
}

/// Puts `extra` before the VERSION section (or at the end).
fn insert_before_version(page: &str, extra: &str) -> String {
    match page.find("\n.SH VERSION") {
        Some(at) => format!("{}\n{}{}", &page[..at], extra, &page[at + 1..]),
        None => format!("{page}{extra}"),
    }
}

/// Text safe in roff: backslashes and hyphens escaped, no line read as a
/// request.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}
