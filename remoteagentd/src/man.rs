//! The man page `remoteagentd.1` (`remoteagentd --write-man DIR`): clap's
//! sections plus FILES (every place of [`crate::paths::Paths`] and the
//! files of `--daemonize`) and ENVIRONMENT ([`crate::config::ENV_VARS`]).

use crate::config::ENV_VARS;

/// Where the daemon's files are, as the page says it: the XDG variable and
/// its default, then what the file is.
pub const FILES: &[(&str, &str)] = &[
    (
        "$XDG_CONFIG_HOME/remoteagent/config.toml (~/.config/remoteagent/config.toml)",
        "The config file (optional; unknown keys are refused). Read at start and again on SIGHUP or `remoteagentctl reload`.",
    ),
    (
        "$XDG_DATA_HOME/remoteagent/agents/ (~/.local/share/remoteagent/agents/)",
        "One AGENT_ID.json of metadata per paired agent (never its token).",
    ),
    (
        "$XDG_DATA_HOME/remoteagent/secrets/ (~/.local/share/remoteagent/secrets/)",
        "The file secret store (0600 files), used only with secret_store = \"file\"; otherwise tokens are in the OS keyring (service remoteagent).",
    ),
    (
        "$XDG_STATE_HOME/remoteagent/logs/ (~/.local/state/remoteagent/logs/)",
        "Session logs, AGENT_ID/SESSION_ID.log (0600, the whole output).",
    ),
    (
        "$XDG_STATE_HOME/remoteagent/inbox/ (~/.local/state/remoteagent/inbox/)",
        "Files sent from the phone with a prompt, AGENT_ID/SESSION_ID/NAME (folders 0700, files 0600); deleted with the run's log.",
    ),
    (
        "$XDG_STATE_HOME/remoteagent/envelopes/ (~/.local/state/remoteagent/envelopes/)",
        "AGENT_ID.seen, the command envelopes already acted on (replay protection).",
    ),
    (
        "$XDG_RUNTIME_DIR/remoteagent/remoteagentd.sock",
        "The control socket (0600) remoteagentctl talks to; without XDG_RUNTIME_DIR, $TMPDIR/remoteagent-UID/remoteagentd.sock.",
    ),
    (
        "$XDG_RUNTIME_DIR/remoteagent/remoteagentd.pid",
        "The pid file of --daemonize (unless --pidfile names another).",
    ),
    (
        "$XDG_STATE_HOME/remoteagent/remoteagentd.log",
        "The log of --daemonize (otherwise the log goes to stderr, or the journal under systemd).",
    ),
];

/// macOS puts the same files elsewhere when the XDG variables are unset.
const MACOS_NOTE: &str = "On macOS without the XDG variables: ~/Library/Application Support/remoteagent/ for the config and data, ~/Library/Logs/remoteagent/ for the state.";

/// The page: clap's sections, then FILES and ENVIRONMENT (before VERSION).
pub fn render(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    let page = String::from_utf8_lossy(&out).into_owned();
    let mut extra = section("FILES", FILES);
    extra.push_str(&format!(".PP\n{}\n", escape(MACOS_NOTE)));
    extra.push_str(&section("ENVIRONMENT", ENV_VARS));
    extra.push_str(&format!(
        ".SH SIGNALS\n.TP\nSIGHUP\n{}\n.TP\nSIGTERM, SIGINT\n{}\n",
        escape("Read the config file again: changed settings apply from the next run; secret_store takes effect after a restart; a broken file is refused and the previous config kept (said in the log, `remoteagentctl status` and `doctor`)."),
        escape("Stop: every run is aborted and its end published; a second signal exits at once."),
    ));
    Ok(insert_before_version(&page, &extra).into_bytes())
}

/// A `.SH` section of tagged paragraphs.
pub fn section(title: &str, entries: &[(&str, &str)]) -> String {
    let mut text = format!(".SH {title}\n");
    for (tag, body) in entries {
        text.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", escape(tag), escape(body)));
    }
    text
}

/// Puts `extra` before the VERSION section (or at the end).
pub fn insert_before_version(page: &str, extra: &str) -> String {
    match page.find("\n.SH VERSION") {
        Some(at) => format!("{}\n{}{}", &page[..at], extra, &page[at + 1..]),
        None => format!("{page}{extra}"),
    }
}

/// Text safe in roff: backslashes and hyphens escaped, no line read as a
/// request.
pub fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}
