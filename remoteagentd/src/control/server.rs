//! Binding the control socket and serving its connections.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use interprocess::local_socket::tokio::{Listener, Stream, prelude::*};
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use remoteagent_control::Client;
use remoteagent_control::codec::{self, Line};
use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::control::{
    AgentRequest, ClientMessage, ErrorCode, HelloRequest, MAX_LINE_BYTES, PROTOCOL_VERSION, Reply,
    Request, Response,
};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodecError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ControlError, ReplySink};
use crate::paths::{PathsError, ensure_private_dir};
use crate::supervisor::Supervisor;
use crate::util::time::sleep_unless_cancelled;

/// The pause after a failed `accept` (out of file descriptors, say).
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Waits between failed `accept`s: a steady pause, so the loop never spins.
const ACCEPT_RETRY: Backoff = Backoff::new(ACCEPT_RETRY_DELAY, ACCEPT_RETRY_DELAY).without_jitter();

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "remoteagentd is already running for this user (pid {pid}, socket {socket}); stop it first"
    )]
    AlreadyRunning { pid: String, socket: PathBuf },
    #[error(transparent)]
    Dir(#[from] PathsError),
    #[error("{action} the control socket {path}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
}

/// The bound control socket.
pub struct ControlServer {
    listener: Listener,
}

/// Asks a live daemon on `path` for its pid, for the "already running"
/// message. Any failure just leaves the pid unknown.
async fn running_pid(path: &Path) -> String {
    let ask = async {
        let mut client = Client::connect(path).await.ok()?;
        match client.call(Request::Status).await.ok()? {
            Response::Status(s) => Some(s.pid.to_string()),
            _ => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(3), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".into())
}

impl ControlServer {
    /// Binds the socket: its folder is created 0700 and must be ours; a
    /// socket file left by a crashed daemon is replaced, a live daemon's is
    /// not.
    pub async fn bind(path: &Path) -> Result<Self, BindError> {
        let dir = path.parent().unwrap_or_else(|| Path::new("/"));
        ensure_private_dir(dir)?;
        let io = |action: &'static str| {
            move |source| BindError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        let name = path.to_fs_name::<GenericFilePath>().map_err(io("naming"))?;
        if std::fs::symlink_metadata(path).is_ok() {
            match Stream::connect(name.clone()).await {
                Ok(_) => {
                    return Err(BindError::AlreadyRunning {
                        pid: running_pid(path).await,
                        socket: path.to_path_buf(),
                    });
                }
                Err(_) => {
                    tracing::info!(socket = %path.display(), "replacing a stale control socket left by a daemon that is gone");
                    std::fs::remove_file(path).map_err(io("removing the stale"))?;
                }
            }
        }
        let listener = ListenerOptions::new()
            .name(name)
            .mode(0o600)
            .reclaim_name(false)
            .try_overwrite(false)
            .create_tokio();
        let listener = match listener {
            Ok(l) => l,
            // Another daemon bound it between our check and our bind.
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(BindError::AlreadyRunning {
                    pid: running_pid(path).await,
                    socket: path.to_path_buf(),
                });
            }
            Err(e) => return Err(io("creating")(e)),
        };
        // The mode above is applied with the umask; make sure of the result.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("restricting permissions of"))?;
        Ok(ControlServer { listener })
    }

    /// Accepts connections until `shutdown` is cancelled, then waits for the
    /// open connections to end (they are told to by the same token).
    pub async fn serve(&self, supervisor: Arc<Supervisor>, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        let mut backoff = ACCEPT_RETRY;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(stream) => {
                        backoff.reset();
                        tracker.spawn(connection(stream, supervisor.clone(), shutdown.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a control connection failed");
                        // Out of file descriptors and similar: do not spin.
                        // The backoff has no last attempt: the socket is
                        // served until shutdown.
                        let delay = backoff.next_delay().unwrap_or(ACCEPT_RETRY_DELAY);
                        if !sleep_unless_cancelled(delay, &shutdown).await {
                            break;
                        }
                    }
                },
            }
        }
        tracker.close();
        tracker.wait().await;
    }

    /// Removes the socket file (after [`Self::serve`] returned and the agents
    /// are shut down), so clients see "not running" rather than a dead socket.
    pub fn remove_socket(path: &Path) {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(socket = %path.display(), error = %e, "could not remove the control socket");
        }
    }
}

/// The id of a message that is valid JSON but not a valid request, so the
/// error reply can name it.
fn salvage_id(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_u64()))
        .unwrap_or(0)
}

/// What to tell a client whose line the codec refused; `None` for an I/O
/// error (the client is gone).
fn refusal(e: &LinesCodecError) -> Option<String> {
    match e {
        LinesCodecError::MaxLineLengthExceeded => Some(format!(
            "a line is limited to {MAX_LINE_BYTES} bytes; closing the connection"
        )),
        LinesCodecError::Io(_) => None,
    }
}

async fn connection(stream: Stream, supervisor: Arc<Supervisor>, shutdown: CancellationToken) {
    // Only our own user may drive the daemon: the socket's mode already says
    // so, the peer's uid makes sure of it.
    let ours = nix::unistd::geteuid().as_raw();
    match stream.peer_creds().map(|c| c.euid()) {
        Ok(Some(uid)) if uid == ours => {}
        Ok(peer) => {
            tracing::warn!(peer_uid = ?peer, our_uid = ours, "refusing a control connection from another user");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "refusing a control connection whose peer is unknown");
            return;
        }
    }
    let (r, w) = tokio::io::split(stream);
    let mut reader = FramedRead::new(r, codec::lines());
    let (tx, mut rx) = mpsc::channel::<Reply>(64);
    let writer = tokio::spawn(async move {
        let mut w = FramedWrite::new(w, codec::lines());
        while let Some(reply) = rx.recv().await {
            let Ok(line) = serde_json::to_string(&reply) else {
                continue;
            };
            if w.send(line).await.is_err() {
                break;
            }
        }
        let _ = SinkExt::<String>::close(&mut w).await;
    });

    let mut greeted = false;
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => break,
            line = reader.next() => line,
        };
        let line = match line {
            Some(Ok(Line::Text(line))) => line,
            Some(Ok(Line::NotUtf8)) => {
                let _ = tx
                    .send(Reply::error(
                        0,
                        ErrorCode::BadRequest,
                        "not a valid request: the line is not UTF-8",
                    ))
                    .await;
                continue;
            }
            None => break,
            Some(Err(e)) => {
                // The codec cannot resync after an error: say why, then close.
                if let Some(why) = refusal(&e) {
                    let _ = tx.send(Reply::error(0, ErrorCode::BadRequest, why)).await;
                }
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let message: ClientMessage = match serde_json::from_str(&line) {
            Ok(m) => m,
            Err(e) => {
                let _ = tx
                    .send(Reply::error(
                        salvage_id(&line),
                        ErrorCode::BadRequest,
                        format!("not a valid request: {e}"),
                    ))
                    .await;
                continue;
            }
        };
        if !greeted {
            match message.request {
                Request::Hello(h) if h.protocol == PROTOCOL_VERSION => {
                    greeted = true;
                    let _ = tx.send(Reply::done(message.id, hello())).await;
                    continue;
                }
                Request::Hello(HelloRequest { protocol, .. }) => {
                    let _ = tx
                        .send(Reply::error(
                            message.id,
                            ErrorCode::ProtocolMismatch,
                            format!(
                                "protocol mismatch: remoteagentctl speaks version {protocol}, remoteagentd {} speaks version {PROTOCOL_VERSION}; use matching versions",
                                env!("CARGO_PKG_VERSION")
                            ),
                        ))
                        .await;
                    break;
                }
                _ => {
                    let _ = tx
                        .send(Reply::error(
                            message.id,
                            ErrorCode::BadRequest,
                            "the first request must be hello",
                        ))
                        .await;
                    continue;
                }
            }
        }
        let id = message.id;
        let handler = dispatch(&supervisor, id, message.request, &tx);
        tokio::pin!(handler);
        let reply = loop {
            tokio::select! {
                reply = &mut handler => break Some(reply),
                _ = shutdown.cancelled() => {
                    let _ = tx.send(Reply::error(id, ErrorCode::ShuttingDown, "remoteagentd is shutting down")).await;
                    break None;
                }
                // Reading on while a request runs is how a client hanging up
                // (Ctrl-C on `pair` or `logs -f`) is noticed and the request
                // cancelled.
                line = reader.next() => match line {
                    Some(Ok(extra)) => {
                        let id = match &extra {
                            Line::Text(extra) => salvage_id(extra),
                            Line::NotUtf8 => 0,
                        };
                        let _ = tx.send(Reply::error(
                            id,
                            ErrorCode::BadRequest,
                            "one request at a time per connection; this one was ignored",
                        )).await;
                    }
                    _ => break None,
                },
            }
        };
        match reply {
            Some(reply) => {
                if tx.send(reply).await.is_err() {
                    break;
                }
            }
            None => break,
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn hello() -> Response {
    Response::Hello {
        protocol: PROTOCOL_VERSION,
        daemon_version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Runs one request and returns its final reply; streamed replies go to
/// `sink` on the way.
async fn dispatch(
    supervisor: &Arc<Supervisor>,
    id: u64,
    request: Request,
    sink: &ReplySink,
) -> Reply {
    let result: Result<Option<Response>, ControlError> = match request {
        Request::Hello(h) if h.protocol == PROTOCOL_VERSION => Ok(Some(hello())),
        Request::Hello(_) => Err(ControlError::new(
            ErrorCode::ProtocolMismatch,
            "protocol mismatch in a repeated hello",
        )),
        Request::Pair(request) => super::pair::handle(supervisor, id, request, sink)
            .await
            .map(Some),
        Request::List => Ok(Some(super::list::handle(supervisor))),
        Request::Status => Ok(Some(super::status::handle(supervisor))),
        Request::Stop(AgentRequest { agent }) => {
            super::stop::handle(supervisor, &agent).await.map(Some)
        }
        Request::Logs(request) => super::logs::handle(supervisor, id, request, sink).await,
        Request::Unpair(AgentRequest { agent }) => {
            super::unpair::handle(supervisor, &agent).await.map(Some)
        }
        Request::Approval(request) => super::approval::handle(supervisor, request).await.map(Some),
        Request::Doctor => Ok(Some(super::doctor::handle(supervisor).await)),
        Request::Reload => super::reload::handle(supervisor).map(Some),
        Request::Approvals => Ok(Some(super::approvals::list(supervisor))),
        Request::ApprovalAnswer(request) => super::approvals::answer(supervisor, request)
            .await
            .map(Some),
        Request::Sessions(AgentRequest { agent }) => {
            super::sessions::handle(supervisor, &agent).await.map(Some)
        }
        Request::Rules(request) => super::rules::handle(supervisor, request).await.map(Some),
        Request::Checkpoint(request) => super::checkpoint::handle(supervisor, request)
            .await
            .map(Some),
        Request::Worktrees(request) => super::worktrees::handle(supervisor, request)
            .await
            .map(Some),
    };
    match result {
        Ok(Some(response)) => Reply::done(id, response),
        Ok(None) => Reply::end(id),
        Err(e) => e.reply(id),
    }
}
