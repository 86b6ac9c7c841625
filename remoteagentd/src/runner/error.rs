//! Why a runner could not be started. A leaf, so the command line, the
//! spawning and the approval setup can all report one error type.

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("the runner's command is empty")]
    EmptyCommand,
    #[error("could not start '{program}': {reason}")]
    Spawn { program: String, reason: String },
}
