//! Spawning the AI CLI and reading what it writes.
//!
//! The runner is started in the project folder, in a process group of its
//! own (so an abort reaches the CLI's children too), with stdin closed, the
//! prompt as exactly one argv element (never through a shell) and a scrubbed
//! environment: only an allowlist of variables reaches it, so nothing of the
//! daemon's own secrets (agent JWTs, D-Bus addresses to the keyring) can leak
//! into a process that runs whatever the model decides. Its command line
//! is rendered in [`invocation`].

use std::ffi::OsString;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use remoteagent_proto::SessionId;
use remoteagent_proto::events::{DonePayload, DoneStatus, StreamKind};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub mod ansi;
pub mod claude;
pub mod codex;
pub mod codex_app;
pub mod error;
pub mod format;
pub mod invocation;
pub mod process;
pub mod text;
pub mod utf8;

pub use error::RunnerError;
pub use invocation::{
    ApprovalMode, Attached, AttachedFile, Invocation, Resume, Sandbox, command_line,
};

/// Read size from the runner's pipes.
const READ_BUF: usize = 64 * 1024;
/// Pipe reads in flight between the runner and the session; when the
/// session is busy writing to Redis the readers stop, the pipe fills and the
/// runner blocks. Memory stays bounded however fast the runner writes.
const PIPE_QUEUE: usize = 8;

/// Variables passed through to the runner, by exact name.
const ENV_ALLOW: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "TZ",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    // The vendors' own credentials: the CLIs need them, and they belong to
    // the same user who runs the daemon.
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_CLOUD_PROJECT",
];

/// Variables passed through by prefix.
const ENV_ALLOW_PREFIX: &[&str] = &["LC_", "CLAUDE_CODE_", "AIDER_", "CODEX_"];

/// The environment a runner gets: the allowlisted part of ours, plus
/// settings that make CLIs print plain text.
pub fn scrubbed_env() -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            let Some(k) = k.to_str() else { return false };
            // Never, whatever the allowlist says.
            if k.starts_with("REMOTEAGENT") {
                return false;
            }
            ENV_ALLOW.contains(&k) || ENV_ALLOW_PREFIX.iter().any(|p| k.starts_with(p))
        })
        .collect();
    env.push(("NO_COLOR".into(), "1".into()));
    env.push(("TERM".into(), "dumb".into()));
    env
}

/// What the pipe readers hand the session.
#[derive(Debug)]
pub struct PipeData {
    pub stream: StreamKind,
    pub bytes: Vec<u8>,
}

/// The pipes of a runner the daemon talks to ([`Running::spawn_talking`]).
pub struct Talk {
    pub stdin: tokio::process::ChildStdin,
    pub stdout: tokio::process::ChildStdout,
    /// Where what is read from stdout goes: the session's pipe.
    pub out: mpsc::Sender<PipeData>,
}

/// A spawned runner.
pub struct Running {
    child: Child,
    pgid: Pid,
    /// Why the run failed, as a runner the daemon talks to reported it
    /// (Codex's failed turn), although the process exits cleanly.
    failure: Arc<OnceLock<String>>,
}

impl Running {
    /// Spawns `program args` in `cwd`; its output arrives on the returned
    /// receiver, which closes when both pipes reached end of file.
    /// The session's id is in the runner's environment ([`process::SESSION_ENV`]).
    pub fn spawn(
        program: &str,
        args: &[String],
        cwd: &Path,
        session: &SessionId,
    ) -> Result<(Running, mpsc::Receiver<PipeData>), RunnerError> {
        let (running, rx, _) = Running::spawn_inner(program, args, cwd, session, false)?;
        Ok((running, rx))
    }

    /// Like [`Running::spawn`], for a runner the daemon talks to
    /// ([`codex_app`]): its stdin and stdout are the caller's, who hands
    /// what it reads on with the returned sender; stderr is read as usual.
    pub fn spawn_talking(
        program: &str,
        args: &[String],
        cwd: &Path,
        session: &SessionId,
    ) -> Result<(Running, mpsc::Receiver<PipeData>, Talk), RunnerError> {
        let (running, rx, talk) = Running::spawn_inner(program, args, cwd, session, true)?;
        let talk = talk.ok_or_else(|| RunnerError::Spawn {
            program: program.to_string(),
            reason: "its stdin or stdout could not be opened".into(),
        })?;
        Ok((running, rx, talk))
    }

    fn spawn_inner(
        program: &str,
        args: &[String],
        cwd: &Path,
        session: &SessionId,
        talking: bool,
    ) -> Result<(Running, mpsc::Receiver<PipeData>, Option<Talk>), RunnerError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(scrubbed_env())
            .env(process::SESSION_ENV, session.as_str())
            .stdin(if talking {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        // PR_SET_PDEATHSIG fires when the *thread* that forked the child
        // exits, not only the process. This runs on the session's task,
        // polled by a tokio worker thread (or the current-thread runtime's
        // own thread), and those live as long as the runtime, hence as the
        // daemon; the daemon never uses `block_in_place`, which would turn
        // a worker into a blocking-pool thread that ends after being idle.
        // Never move this spawn into `spawn_blocking`: those threads exit
        // after 10 s idle and would kill the runner with them.
        let mut child = cmd.spawn().map_err(|e| RunnerError::Spawn {
            program: program.to_string(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "not found in PATH (is it installed?)".to_string()
            } else {
                e.to_string()
            },
        })?;
        let pid = child.id().ok_or_else(|| RunnerError::Spawn {
            program: program.to_string(),
            reason: "exited before it could be tracked".into(),
        })?;
        let (tx, rx) = mpsc::channel(PIPE_QUEUE);
        let mut talk = None;
        if talking {
            if let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) {
                talk = Some(Talk {
                    stdin,
                    stdout,
                    out: tx.clone(),
                });
            }
        } else if let Some(out) = child.stdout.take() {
            tokio::spawn(read_pipe(out, StreamKind::Stdout, tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(read_pipe(err, StreamKind::Stderr, tx));
        }
        Ok((
            Running {
                child,
                pgid: Pid::from_raw(pid as i32),
                failure: Arc::default(),
            },
            rx,
            talk,
        ))
    }

    /// Where a runner the daemon talks to reports a failed run.
    pub fn failure_cell(&self) -> Arc<OnceLock<String>> {
        self.failure.clone()
    }

    /// `done` as a failure when the runner exited cleanly but reported
    /// one ([`Running::failure_cell`]).
    pub fn with_reported_failure(&self, mut done: DonePayload) -> DonePayload {
        if done.status == DoneStatus::Ok
            && let Some(message) = self.failure.get()
        {
            done.status = DoneStatus::Failed;
            done.message = Some(message.clone());
        }
        done
    }

    pub fn pid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// Sends `signal` to the runner's whole process group.
    pub fn signal_group(&self, signal: Signal) {
        // ESRCH (the group is already gone) is the normal end of a race
        // with the runner exiting by itself.
        let _ = killpg(self.pgid, signal);
    }

    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Whatever the runner left behind in its group goes with it: a
        // session never outlives its record.
        let _ = killpg(self.pgid, Signal::SIGKILL);
    }
}

/// Linux: the runner gets SIGKILL when the daemon dies, however it dies
/// (`kill -9` included), instead of running on as an orphan beside the
/// next daemon's runners. What the runner starts itself does not inherit
/// this (the kernel clears it on fork); the next daemon ends those
/// through the session log's record (see [`process`]).
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: it makes two system calls
    // (prctl, getppid) and builds errors from raw errno values, without
    // allocating or taking locks.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
            // The daemon may have died between fork and prctl, in which
            // case the signal never comes: we were already reparented.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Elsewhere there is no parent-death signal; the next daemon's start-up
/// sweep is all there is.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

async fn read_pipe(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    stream: StreamKind,
    tx: mpsc::Sender<PipeData>,
) {
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let data = PipeData {
                    stream,
                    bytes: buf[..n].to_vec(),
                };
                if tx.send(data).await.is_err() {
                    break;
                }
            }
        }
    }
}
