//! `Request::Pair`: streams the pairing code, ends with `Paired` or an error.

use std::sync::Arc;

use remoteagent_proto::control::{PairRequest, Reply, Response};

use super::{ControlError, ReplySink};
use crate::pairing::{PairParams, pair};
use crate::supervisor::Supervisor;

pub async fn handle(
    supervisor: &Arc<Supervisor>,
    id: u64,
    request: PairRequest,
    sink: &ReplySink,
) -> Result<Response, ControlError> {
    let PairRequest { path, name, runner } = request;
    let params = PairParams { path, name, runner };
    let progress = |code: Response| {
        // The channel is bounded but nearly empty here; `try_send` keeps the
        // pairing flow free of a second await point. A full or closed
        // channel means the client is gone, which the connection notices.
        let _ = sink.try_send(Reply::more(id, code));
    };
    let agent = pair(supervisor, params, progress).await?;
    Ok(Response::Paired { agent })
}
