//! One file per command, each the client half of a daemon request
//! (`doctor` also runs when the daemon does not).

pub mod approvals;
pub mod checkpoint;
pub mod doctor;
pub mod list;
pub mod logs;
pub mod pair;
pub mod reload;
pub mod rules;
pub mod sessions;
pub mod status;
pub mod stop;
pub mod unpair;
pub mod worktrees;

use crate::error::CliError;

/// Prints a value as one line of JSON (for `--json`).
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text =
        serde_json::to_string(value).map_err(|e| CliError::error(format!("encoding JSON: {e}")))?;
    print_line(&text)
}

/// Remote text (names, prompts, messages from the cloud or a runner) made
/// safe for a terminal: no escape sequences (titles, screen clearing, OSC 52
/// clipboard writes), no control or bidi/format characters, one line.
pub fn shown(text: &str) -> String {
    remoteagent_proto::text::for_terminal_line(text)
}

/// Prints one line to stdout. A reader that went away (`logs -f | head`)
/// ends the program quietly instead of with a panic.
pub fn print_line(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(CliError::error(format!("writing to stdout: {e}"))),
    }
}

/// The first characters of an id, enough to tell agents apart and to type.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
