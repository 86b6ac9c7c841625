//! Spawning the AI CLI and reading what it writes.
//!
//! The runner is started in the project folder, in a process group of its
//! own (so an abort reaches the CLI's children too), with stdin closed, the
//! prompt as exactly one argv element (never through a shell) and a scrubbed
//! environment: only an allowlist of variables reaches it, so nothing of the
//! daemon's own secrets (agent JWTs, D-Bus addresses to the keyring) can leak
//! into a process that runs whatever the model decides.

use std::ffi::OsString;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use remoteagent_proto::SessionId;
use remoteagent_proto::events::StreamKind;
use remoteagent_proto::runner::{Preset, RunnerSpec};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub mod ansi;
pub mod claude;
pub mod codex;
pub mod format;
pub mod process;
pub mod utf8;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("the runner's command is empty")]
    EmptyCommand,
    #[error("could not start '{program}': {reason}")]
    Spawn { program: String, reason: String },
}

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

/// Which conversation a prompt belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume<'a> {
    /// A new conversation: the user sent `/new`.
    Fresh,
    /// The CLI's most recent conversation in the project folder: the user
    /// wants to continue, but no conversation id has been seen yet.
    Latest,
    /// This conversation (an id the CLI reported in an earlier session).
    Id(&'a str),
}

impl<'a> Resume<'a> {
    /// The choice for a command: `continue_conversation` is the command's
    /// `continue` flag, `stored` the agent's last conversation id.
    pub fn choose(continue_conversation: bool, stored: Option<&'a str>) -> Self {
        match (continue_conversation, stored) {
            (false, _) => Resume::Fresh,
            // The metadata file is the user's to edit: an id that would not
            // be a single plain argument is not used.
            (true, Some(id)) if format::valid_conversation_id(id) => Resume::Id(id),
            (true, _) => Resume::Latest,
        }
    }
}

/// What one session asks of the runner.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    pub prompt: &'a str,
    pub resume: Resume<'a>,
}

/// Program and arguments for a prompt.
///
/// - Claude Code: `claude -p <prompt> --output-format stream-json --verbose`,
///   plus `--resume <id>` or `--continue`.
/// - Codex: `codex exec --json [resume <id> | resume --last] -- <prompt>`;
///   the `--` keeps a prompt that starts with `-` from being read as an
///   option.
/// - Aider, Gemini and custom commands get the prompt alone; they keep no
///   conversation of ours.
pub fn command_line(
    spec: &RunnerSpec,
    invocation: &Invocation<'_>,
) -> Result<(String, Vec<String>), RunnerError> {
    let prompt = invocation.prompt;
    let p = prompt.to_string();
    let (program, args): (&str, Vec<String>) = match spec {
        RunnerSpec::Preset(Preset::Claude) => {
            let mut args = vec![
                "-p".into(),
                p,
                "--output-format".into(),
                "stream-json".into(),
                "--verbose".into(),
            ];
            match invocation.resume {
                Resume::Fresh => {}
                Resume::Latest => args.push("--continue".into()),
                Resume::Id(id) => args.extend(["--resume".into(), id.to_string()]),
            }
            ("claude", args)
        }
        RunnerSpec::Preset(Preset::Codex) => {
            let mut args: Vec<String> = vec!["exec".into(), "--json".into()];
            match invocation.resume {
                Resume::Fresh => {}
                Resume::Latest => args.extend(["resume".into(), "--last".into()]),
                Resume::Id(id) => args.extend(["resume".into(), id.to_string()]),
            }
            args.extend(["--".into(), p]);
            ("codex", args)
        }
        RunnerSpec::Preset(Preset::Aider) => (
            "aider",
            vec![
                "--message".into(),
                p,
                "--yes-always".into(),
                "--no-pretty".into(),
            ],
        ),
        RunnerSpec::Preset(Preset::Gemini) => ("gemini", vec!["-p".into(), p]),
        RunnerSpec::Command(argv) => {
            let (program, rest) = argv.split_first().ok_or(RunnerError::EmptyCommand)?;
            let mut args: Vec<String> = Vec::with_capacity(rest.len() + 1);
            let mut placed = false;
            for a in rest {
                if a == "{prompt}" {
                    args.push(prompt.to_string());
                    placed = true;
                } else {
                    args.push(a.clone());
                }
            }
            if !placed {
                args.push(prompt.to_string());
            }
            return Ok((program.clone(), args));
        }
    };
    Ok((program.to_string(), args))
}

/// What the pipe readers hand the session.
#[derive(Debug)]
pub struct PipeData {
    pub stream: StreamKind,
    pub bytes: Vec<u8>,
}

/// A spawned runner.
pub struct Running {
    child: Child,
    pgid: Pid,
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
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(scrubbed_env())
            .env(process::SESSION_ENV, session.as_str())
            .stdin(Stdio::null())
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
        if let Some(out) = child.stdout.take() {
            tokio::spawn(read_pipe(out, StreamKind::Stdout, tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(read_pipe(err, StreamKind::Stderr, tx));
        }
        Ok((
            Running {
                child,
                pgid: Pid::from_raw(pid as i32),
            },
            rx,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(spec: &RunnerSpec, prompt: &str, resume: Resume<'_>) -> (String, Vec<String>) {
        command_line(spec, &Invocation { prompt, resume }).unwrap()
    }

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prompt_is_one_argument() {
        let spec = RunnerSpec::Command(vec!["./r.sh".into(), "--x".into()]);
        let (p, a) = line(&spec, "a b; $(rm -rf ~)", Resume::Fresh);
        assert_eq!(p, "./r.sh");
        assert_eq!(a, strings(&["--x", "a b; $(rm -rf ~)"]));
        let spec = RunnerSpec::Command(vec!["t".into(), "{prompt}".into(), "--y".into()]);
        let (_, a) = line(&spec, "hi", Resume::Id("abc"));
        assert_eq!(a, strings(&["hi", "--y"]));
        let empty = Invocation {
            prompt: "x",
            resume: Resume::Fresh,
        };
        assert!(command_line(&RunnerSpec::Command(vec![]), &empty).is_err());
    }

    #[test]
    fn claude_resumes_by_id_or_continues() {
        let claude = RunnerSpec::Preset(Preset::Claude);
        let base = ["-p", "go", "--output-format", "stream-json", "--verbose"];
        let (p, a) = line(&claude, "go", Resume::Fresh);
        assert_eq!((p.as_str(), a), ("claude", strings(&base)));
        let (_, a) = line(&claude, "go", Resume::Latest);
        assert_eq!(a, strings(&[&base[..], &["--continue"]].concat()));
        let (_, a) = line(&claude, "go", Resume::Id("3f6d-1c2e"));
        assert_eq!(
            a,
            strings(&[&base[..], &["--resume", "3f6d-1c2e"]].concat())
        );
    }

    #[test]
    fn codex_resumes_with_its_subcommand() {
        let codex = RunnerSpec::Preset(Preset::Codex);
        let (p, a) = line(&codex, "go", Resume::Fresh);
        assert_eq!(
            (p.as_str(), a),
            ("codex", strings(&["exec", "--json", "--", "go"]))
        );
        let (_, a) = line(&codex, "-v resume", Resume::Id("0199a213"));
        assert_eq!(
            a,
            strings(&["exec", "--json", "resume", "0199a213", "--", "-v resume"])
        );
        let (_, a) = line(&codex, "go", Resume::Latest);
        assert_eq!(
            a,
            strings(&["exec", "--json", "resume", "--last", "--", "go"])
        );
    }

    #[test]
    fn other_presets_keep_their_arguments() {
        let (p, a) = line(&RunnerSpec::Preset(Preset::Aider), "go", Resume::Id("x"));
        assert_eq!(
            (p.as_str(), a),
            (
                "aider",
                strings(&["--message", "go", "--yes-always", "--no-pretty"])
            )
        );
        let (p, a) = line(&RunnerSpec::Preset(Preset::Gemini), "go", Resume::Latest);
        assert_eq!((p.as_str(), a), ("gemini", strings(&["-p", "go"])));
    }

    #[test]
    fn the_resume_choice() {
        assert_eq!(Resume::choose(false, Some("abc")), Resume::Fresh);
        assert_eq!(Resume::choose(false, None), Resume::Fresh);
        assert_eq!(Resume::choose(true, Some("abc")), Resume::Id("abc"));
        assert_eq!(Resume::choose(true, None), Resume::Latest);
        // A hand-edited id that would become an option is not used.
        assert_eq!(Resume::choose(true, Some("--help")), Resume::Latest);
    }
}
