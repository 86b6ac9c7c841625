//! `Request::Reload`: what SIGHUP does, with the outcome told to the
//! client (`remoteagentctl reload`).

use remoteagent_proto::control::{ErrorCode, Response};

use crate::paths::Paths;
use crate::request_error::ControlError;
use crate::supervisor::Supervisor;

pub fn handle(supervisor: &Supervisor) -> Result<Response, ControlError> {
    let path = match supervisor.config_file() {
        Some(path) => path.to_path_buf(),
        None => {
            Paths::from_env()
                .map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))?
                .config_file
        }
    };
    match supervisor.reload_config(&path) {
        Ok(done) => Ok(Response::Reloaded {
            changed: done.changed,
            restart_needed: done.restart_needed,
        }),
        Err(failure) => Err(ControlError::new(
            ErrorCode::ConfigInvalid,
            format!("{failure}; the daemon keeps its previous config"),
        )),
    }
}
