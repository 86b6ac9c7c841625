//! The error a control request ends with: a code the CLI maps to an exit
//! status, and a message for the user. A leaf of its own, because the
//! supervisor and the pairing flow answer requests with it too, and the
//! control socket (which re-exports it) uses both of them.

use remoteagent_proto::control::{ErrorCode, Reply};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    pub code: ErrorCode,
    pub message: String,
}

impl ControlError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ControlError {
            code,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn reply(&self, id: u64) -> Reply {
        Reply::error(id, self.code, self.message.clone())
    }
}
