//! `Request::Status`: the daemon's health.

use remoteagent_proto::control::Response;

use crate::supervisor::Supervisor;

pub fn handle(supervisor: &Supervisor) -> Response {
    Response::Status(supervisor.status())
}
