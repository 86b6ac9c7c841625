//! Errors of the CLI and the exit codes scripts can rely on.

use std::process::ExitCode;

use remoteagent_control::ClientError;
use remoteagent_proto::control::{ErrorCode, ErrorInfo};

/// Exit codes (also listed in `--help`).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other error (refused, expired, cloud unreachable, …).
    pub const ERROR: u8 = 1;
    /// Bad command-line usage.
    pub const USAGE: u8 = 2;
    /// The daemon is not running (no control socket).
    pub const NOT_RUNNING: u8 = 3;
    /// No such agent/session, or a name matching several agents.
    pub const NOT_FOUND: u8 = 4;
}

/// An error to print as one line and exit with.
#[derive(Debug)]
pub struct CliError {
    pub exit: u8,
    pub message: String,
}

impl CliError {
    pub fn new(exit: u8, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(exit::ERROR, message)
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit)
    }
}

impl From<ErrorInfo> for CliError {
    fn from(info: ErrorInfo) -> Self {
        let exit = match info.code {
            ErrorCode::NotFound | ErrorCode::Ambiguous => exit::NOT_FOUND,
            _ => exit::ERROR,
        };
        CliError::new(exit, info.message)
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Daemon(info) => info.into(),
            e @ ClientError::NotRunning { .. } => CliError::new(exit::NOT_RUNNING, e.to_string()),
            e => CliError::error(e.to_string()),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
