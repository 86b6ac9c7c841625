//! `Request::Pair`: streams the pairing code, ends with `Paired` or an error.

use std::sync::Arc;
use std::time::Duration;

use remoteagent_proto::control::{PairRequest, Reply, Response};

use super::{ControlError, ReplySink};
use crate::pairing::{PairParams, pair};
use crate::supervisor::Supervisor;

/// How long `pair` waits for the new agent to come online.
const ONLINE_WAIT: Duration = Duration::from_secs(20);

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
    // Answer once the agent is online (its presence key written), so a
    // prompt sent from Telegram right after `pair` returns is taken rather
    // than answered "offline". Bounded: an unreachable Redis still gets
    // the pairing reported, with `online: false` for the client to explain.
    let agent = supervisor
        .wait_online(&agent.id, ONLINE_WAIT)
        .await
        .unwrap_or(agent);
    Ok(Response::Paired { agent })
}
