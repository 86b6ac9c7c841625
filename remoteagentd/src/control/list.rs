//! `Request::List`: every paired agent.

use remoteagent_proto::control::Response;

use crate::supervisor::Supervisor;

pub fn handle(supervisor: &Supervisor) -> Response {
    Response::Agents {
        agents: supervisor.list(),
    }
}
