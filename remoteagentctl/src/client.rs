//! A connection to the daemon: connect, say hello, send requests, read
//! replies (NDJSON, `remoteagent_proto::control`).

use std::path::{Path, PathBuf};

use interprocess::local_socket::GenericFilePath;
use interprocess::local_socket::tokio::{Stream, prelude::*};
use remoteagent_proto::control::{ClientMessage, PROTOCOL_VERSION, Reply, Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};

use crate::error::{CliError, exit};

pub struct Client {
    reader: BufReader<ReadHalf<Stream>>,
    writer: WriteHalf<Stream>,
    next_id: u64,
    line: String,
}

fn not_running(socket: &Path, detail: &str) -> CliError {
    CliError::new(
        exit::NOT_RUNNING,
        format!(
            "remoteagentd is not running ({detail} at {}). Start it with `remoteagentd` or `remoteagentctl service install`",
            socket.display()
        ),
    )
}

impl Client {
    /// Connects and exchanges the protocol version.
    pub async fn connect(socket: &Path) -> Result<Self, CliError> {
        // In the temp-dir fallback another user could have planted a socket
        // to collect our pairing requests: only talk to one we own.
        if let Ok(meta) = std::fs::symlink_metadata(socket) {
            use std::os::unix::fs::MetadataExt;
            let ours = nix::unistd::geteuid().as_raw();
            if meta.uid() != ours {
                return Err(CliError::error(format!(
                    "refusing to use {}: it belongs to uid {}, not to us (uid {ours})",
                    socket.display(),
                    meta.uid()
                )));
            }
        }
        let name = socket
            .to_fs_name::<GenericFilePath>()
            .map_err(|e| CliError::error(format!("bad socket path {}: {e}", socket.display())))?;
        let stream = match Stream::connect(name).await {
            Ok(s) => s,
            Err(e) => {
                return Err(match e.kind() {
                    std::io::ErrorKind::NotFound => not_running(socket, "no socket"),
                    std::io::ErrorKind::ConnectionRefused => {
                        not_running(socket, "stale socket, nobody listening")
                    }
                    _ => CliError::error(format!(
                        "cannot connect to remoteagentd at {}: {e}",
                        socket.display()
                    )),
                });
            }
        };
        let (r, w) = tokio::io::split(stream);
        let mut client = Client {
            reader: BufReader::new(r),
            writer: w,
            next_id: 1,
            line: String::new(),
        };
        let hello = Request::Hello {
            protocol: PROTOCOL_VERSION,
            client_version: env!("CARGO_PKG_VERSION").into(),
        };
        match client.call(hello).await {
            Ok(Response::Hello { .. }) => Ok(client),
            Ok(other) => Err(CliError::error(format!(
                "remoteagentd answered hello with {other:?}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// Sends a request and returns its id.
    pub async fn send(&mut self, request: Request) -> Result<u64, CliError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&ClientMessage { id, request })
            .map_err(|e| CliError::error(format!("encoding the request: {e}")))?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .await
            .map_err(|e| CliError::error(format!("sending to remoteagentd: {e}")))?;
        Ok(id)
    }

    /// The next reply. An error reply becomes `Err`.
    pub async fn next(&mut self) -> Result<Reply, CliError> {
        self.line.clear();
        let n = self
            .reader
            .read_line(&mut self.line)
            .await
            .map_err(|e| CliError::error(format!("reading from remoteagentd: {e}")))?;
        if n == 0 {
            return Err(CliError::error(
                "remoteagentd closed the connection (did it stop?)",
            ));
        }
        let reply: Reply = serde_json::from_str(self.line.trim_end())
            .map_err(|e| CliError::error(format!("remoteagentd sent something unreadable: {e}")))?;
        if let Some(error) = reply.error {
            return Err(error.into());
        }
        Ok(reply)
    }

    /// Sends a request that has exactly one reply and returns its data.
    pub async fn call(&mut self, request: Request) -> Result<Response, CliError> {
        self.send(request).await?;
        loop {
            let reply = self.next().await?;
            if let Some(data) = reply.data {
                return Ok(data);
            }
            if reply.is_last() {
                return Err(CliError::error("remoteagentd sent an empty answer"));
            }
        }
    }
}

/// The socket to use: the flag/env value or the default.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(crate::socket::default_socket_path)
}
