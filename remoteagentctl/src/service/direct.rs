//! remoteagentd without a service manager: started with `--daemonize`
//! (which exits 0 only once the daemon serves), stopped by asking the
//! running daemon its pid over the control socket, sending it SIGTERM and
//! waiting for its socket to go away.
//!
//! The pid comes from the daemon's own `status` answer, not from the pid
//! file `--daemonize` writes: that file is missing for a daemon started in
//! the foreground and stale after a crash (its pid may name another
//! process by now), while the answer on the socket is the daemon itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use remoteagent_control::{BlockingClient, BlockingError, codec};
use remoteagent_proto::control::{ClientMessage, Request, Response};

/// How long a stop may take: the daemon gives its runners their abort
/// grace and publishes their end first (its unit allows 30 s as well).
pub const STOP_WAIT: Duration = Duration::from_secs(45);
/// How long the daemon may take to answer `status`.
const ASK_WAIT: Duration = Duration::from_secs(10);

/// A daemon that answered on its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub pid: u32,
    pub socket: PathBuf,
}

/// The daemon answering on `socket`, if any. A socket that does not answer
/// (none, refused, stale) is no daemon; another user's socket is an error.
pub fn running(socket: &Path) -> Result<Option<Running>> {
    let mut client = match BlockingClient::connect(socket) {
        Ok(c) => c,
        Err(BlockingError::Unreachable { .. }) => return Ok(None),
        Err(e) => return Err(e).context("asking remoteagentd for its pid"),
    };
    let line = codec::encode_line(&ClientMessage {
        id: remoteagent_control::blocking::HELLO_ID + 1,
        request: Request::Status,
    })?;
    client.send_line(&line)?;
    let reply = match client.next_before(Instant::now() + ASK_WAIT) {
        Ok(reply) => reply,
        // It went away between connecting and answering: not running.
        Err(BlockingError::Closed) => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "remoteagentd on {} did not answer `status`",
                    socket.display()
                )
            });
        }
    };
    match (reply.data, reply.error) {
        (Some(Response::Status(status)), _) => Ok(Some(Running {
            pid: status.pid,
            socket: status.socket,
        })),
        (_, Some(error)) => bail!("remoteagentd refused `status`: {}", error.message),
        (other, None) => bail!("remoteagentd answered `status` with {other:?}"),
    }
}

/// What `remoteagentd --daemonize` said once the daemon served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pid: Option<u32>,
    /// Its line: "remoteagentd started: pid N, log FILE".
    pub said: String,
}

/// Starts `daemon --daemonize` and waits for its word.
pub fn start(daemon: &Path) -> Result<Started> {
    let out = Command::new(daemon)
        .arg("--daemonize")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --daemonize", daemon.display()))?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        bail!(
            "`{} --daemonize` failed ({}): {}",
            daemon.display(),
            out.status,
            if why.is_empty() { "no message" } else { &why }
        );
    }
    let pid = said
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    Ok(Started { pid, said })
}

/// Sends SIGTERM to `daemon` and waits until its socket is gone.
pub fn stop(daemon: &Running) -> Result<()> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let pid = i32::try_from(daemon.pid).context("the daemon reported an impossible pid")?;
    match kill(Pid::from_raw(pid), Signal::SIGTERM) {
        Ok(()) => {}
        // It exited since it answered.
        Err(nix::errno::Errno::ESRCH) => return Ok(()),
        Err(e) => bail!("sending SIGTERM to remoteagentd (pid {pid}): {e}"),
    }
    let deadline = Instant::now() + STOP_WAIT;
    // The daemon removes its socket as its last act, after every agent
    // stopped: gone means stopped (and a new daemon may bind it). A process
    // that is gone left a stale socket, which the next daemon replaces.
    while daemon.socket.exists() && kill(Pid::from_raw(pid), None).is_ok() {
        if Instant::now() >= deadline {
            bail!(
                "remoteagentd (pid {pid}) did not stop within {} s of SIGTERM \
                 (its agents may still be finishing); its socket {} is still there. \
                 Wait, or end it at once with `kill -KILL {pid}`",
                STOP_WAIT.as_secs(),
                daemon.socket.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
