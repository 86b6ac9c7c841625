//! The connection to the daemon is `remoteagent_control::Client` (shared with
//! the daemon); here only the socket choice.

use std::path::PathBuf;

pub use remoteagent_control::Client;

/// The socket to use: `--socket`/`REMOTEAGENT_SOCKET`, else the daemon's
/// default (`remoteagent_control::socket::default_socket_path`).
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(remoteagent_control::socket::default_socket_path)
}
