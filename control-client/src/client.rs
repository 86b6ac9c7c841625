//! The async client: connect (after the owner check), say hello, send
//! requests, read replies.

use std::path::{Path, PathBuf};

use futures::{SinkExt, StreamExt};
use interprocess::local_socket::GenericFilePath;
use interprocess::local_socket::tokio::{Stream, prelude::*};
use remoteagent_proto::control::{ClientMessage, ErrorInfo, Reply, Request, Response};
use tokio_util::codec::Framed;

use crate::codec::{self, Line, Ndjson};
use crate::socket::{NotOurs, check_owner};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket, or a stale one nobody listens on.
    #[error("remoteagentd is not running ({detail} at {}). Start it with `remoteagentd` or `remoteagentctl service install`", socket.display())]
    NotRunning {
        socket: PathBuf,
        detail: &'static str,
    },
    #[error("refusing to use {}: it belongs to uid {}, not to us (uid {})", .0.path.display(), .0.owner, .0.ours)]
    NotOurs(NotOurs),
    #[error("bad socket path {}: {source}", socket.display())]
    BadPath {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to remoteagentd at {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding the request: {0}")]
    Encode(serde_json::Error),
    #[error("sending to remoteagentd: {0}")]
    Send(std::io::Error),
    #[error("reading from remoteagentd: {0}")]
    Read(tokio_util::codec::LinesCodecError),
    #[error("remoteagentd closed the connection (did it stop?)")]
    Closed,
    #[error("remoteagentd sent something unreadable: {0}")]
    Unreadable(serde_json::Error),
    #[error("remoteagentd sent something unreadable: a line that is not UTF-8")]
    NotUtf8,
    /// The daemon answered with an error reply.
    #[error("{}", .0.message)]
    Daemon(ErrorInfo),
    #[error("remoteagentd answered hello with {0:?}")]
    BadHello(Box<Response>),
    #[error("remoteagentd sent an empty answer")]
    Empty,
}

/// One connection to the daemon, past the `hello` handshake.
pub struct Client {
    framed: Framed<Stream, Ndjson>,
    next_id: u64,
    /// What the daemon said it is in its `hello`.
    daemon_version: String,
}

impl Client {
    /// Checks the socket is ours, connects and exchanges the protocol
    /// version.
    pub async fn connect(socket: &Path) -> Result<Self, ClientError> {
        check_owner(socket).map_err(ClientError::NotOurs)?;
        let name =
            socket
                .to_fs_name::<GenericFilePath>()
                .map_err(|source| ClientError::BadPath {
                    socket: socket.to_path_buf(),
                    source,
                })?;
        let stream = Stream::connect(name).await.map_err(|source| {
            let not_running = |detail| ClientError::NotRunning {
                socket: socket.to_path_buf(),
                detail,
            };
            match source.kind() {
                std::io::ErrorKind::NotFound => not_running("no socket"),
                std::io::ErrorKind::ConnectionRefused => {
                    not_running("stale socket, nobody listening")
                }
                _ => ClientError::Connect {
                    socket: socket.to_path_buf(),
                    source,
                },
            }
        })?;
        let mut client = Client {
            framed: Framed::new(stream, codec::lines()),
            next_id: 1,
            daemon_version: String::new(),
        };
        match client.call(codec::hello()).await? {
            Response::Hello { daemon_version, .. } => {
                client.daemon_version = daemon_version;
                Ok(client)
            }
            other => Err(ClientError::BadHello(Box::new(other))),
        }
    }

    /// The daemon's version, from its `hello`.
    pub fn daemon_version(&self) -> &str {
        &self.daemon_version
    }

    /// Sends a request and returns its id.
    pub async fn send(&mut self, request: Request) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line =
            serde_json::to_string(&ClientMessage { id, request }).map_err(ClientError::Encode)?;
        self.framed.send(line).await.map_err(|e| match e {
            tokio_util::codec::LinesCodecError::Io(e) => ClientError::Send(e),
            other => ClientError::Send(std::io::Error::other(other)),
        })?;
        Ok(id)
    }

    /// The next reply. An error reply becomes [`ClientError::Daemon`].
    pub async fn next(&mut self) -> Result<Reply, ClientError> {
        let line = self
            .framed
            .next()
            .await
            .ok_or(ClientError::Closed)?
            .map_err(ClientError::Read)?;
        let reply: Reply = match line {
            Line::Text(line) => serde_json::from_str(&line).map_err(ClientError::Unreadable)?,
            Line::NotUtf8 => return Err(ClientError::NotUtf8),
        };
        if let Some(error) = reply.error {
            return Err(ClientError::Daemon(error));
        }
        Ok(reply)
    }

    /// Sends a request that has exactly one reply and returns its data.
    pub async fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        self.send(request).await?;
        loop {
            let reply = self.next().await?;
            if let Some(data) = reply.data {
                return Ok(data);
            }
            if reply.is_last() {
                return Err(ClientError::Empty);
            }
        }
    }
}
