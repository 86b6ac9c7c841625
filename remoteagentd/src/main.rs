//! `remoteagentd`: the RemoteAgent daemon. Runs in the foreground (what
//! systemd and launchd expect) unless `--daemonize` is given.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use remoteagentd::config::Config;
use remoteagentd::paths::Paths;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "remoteagentd",
    version,
    // Its one subcommand is hidden (Claude's hook): no `help` subcommand to
    // list in `--help` and the man page.
    disable_help_subcommand = true,
    about = "The RemoteAgent daemon: runs AI coding CLIs in paired project folders on signed commands."
)]
struct Args {
    /// Detach from the terminal and run in the background.
    #[arg(long)]
    daemonize: bool,
    /// Where --daemonize writes the daemon's pid.
    #[arg(long, value_name = "PATH", requires = "daemonize")]
    pidfile: Option<PathBuf>,
    /// Write the man page remoteagentd.1 into DIR and exit (for packagers).
    #[arg(long, value_name = "DIR", hide = true)]
    write_man: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Claude Code's PreToolUse hook (the daemon adds it to Claude's
    /// settings): asks the running daemon whether a tool may be used and
    /// prints the decision; prints a DENY on any failure.
    #[command(name = "approval-hook", hide = true)]
    ApprovalHook {
        /// The daemon's control socket.
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// The agent id.
        #[arg(long)]
        agent: String,
        /// The session id.
        #[arg(long)]
        session: String,
        /// How long to wait for the decision, in seconds.
        #[arg(long, default_value_t = 320)]
        timeout_secs: u64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::ApprovalHook {
        socket,
        agent,
        session,
        timeout_secs,
    }) = args.command
    {
        return approval_hook(socket, agent, session, timeout_secs);
    }
    if let Some(dir) = args.write_man {
        return write_man(&dir);
    }
    let paths = match Paths::from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("remoteagentd: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The config is read before forking so that a bad file is reported on
    // the terminal that started us.
    let config = match Config::load(&paths.config_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("remoteagentd: {e}");
            return ExitCode::FAILURE;
        }
    };
    // With --daemonize, the parent waits on this pipe for the daemon's
    // word: "ok PID" once it serves, or why it could not start.
    let mut started: Option<std::io::PipeWriter> = None;
    if args.daemonize {
        // Forking must happen before the tokio runtime starts its threads.
        match daemonize(&paths, args.pidfile) {
            Ok(Fork::Parent { waiting, log_file }) => return wait_for_start(waiting, &log_file),
            Ok(Fork::Child(writer)) => started = Some(writer),
            Err(e) => {
                eprintln!("remoteagentd: could not daemonize: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    let started = std::sync::Arc::new(std::sync::Mutex::new(started));
    let tell = |word: &str| {
        use std::io::Write;
        if let Some(mut pipe) = started.lock().ok().and_then(|mut s| s.take()) {
            let _ = writeln!(pipe, "{word}");
        }
    };
    remoteagentd::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("remoteagentd: cannot start the async runtime: {e}");
            tell(&format!("error cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        if let Err(e) = remoteagentd::daemon::cancel_on_signals(shutdown.clone()) {
            eprintln!("remoteagentd: cannot install signal handlers: {e}");
            tell(&format!("error cannot install signal handlers: {e}"));
            return ExitCode::FAILURE;
        }
        let ready = || tell(&format!("ok {}", std::process::id()));
        match remoteagentd::daemon::run_with_ready(paths, config, shutdown, ready).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // One clear line on stderr (which journald also captures),
                // and to the parent still waiting after --daemonize.
                eprintln!("remoteagentd: {e}");
                tell(&format!("error {e}"));
                ExitCode::FAILURE
            }
        }
    })
}

/// Runs as Claude Code's hook: one line of JSON on stdout, exit 0 whatever
/// happens (Claude reads the JSON only then), no logging on stdout.
fn approval_hook(socket: PathBuf, agent: String, session: String, timeout_secs: u64) -> ExitCode {
    use std::io::Write;
    let args = remoteagentd::approval::hook::HookArgs {
        socket,
        agent,
        session,
        timeout_secs,
    };
    let line = remoteagentd::approval::hook::run(&args, std::io::stdin().lock());
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    ExitCode::SUCCESS
}

fn write_man(dir: &std::path::Path) -> ExitCode {
    use clap::CommandFactory;
    let written = remoteagentd::man::render(Args::command())
        .and_then(|out| std::fs::create_dir_all(dir).map(|()| out))
        .and_then(|out| std::fs::write(dir.join("remoteagentd.1"), out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "remoteagentd: writing the man page to {}: {e}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Which side of the fork we are on.
enum Fork {
    /// The process the user started: waits for the daemon's word.
    Parent {
        waiting: std::io::PipeReader,
        log_file: PathBuf,
    },
    /// The daemon, detached: says "ok" or why not on this pipe.
    Child(std::io::PipeWriter),
}

/// Longest wait of `--daemonize` for the daemon to say it started (loading
/// agents may wait on a keyring).
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The parent's end: exit 0 with the pid and log only once the daemon
/// serves; otherwise non-zero with its reason.
fn wait_for_start(waiting: std::io::PipeReader, log_file: &std::path::Path) -> ExitCode {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(waiting).read_line(&mut line);
        let _ = tx.send(line);
    });
    let log = log_file.display();
    match rx.recv_timeout(START_WAIT) {
        Ok(line) => match line.trim().split_once(' ') {
            Some(("ok", pid)) => {
                println!("remoteagentd started: pid {pid}, log {log}");
                ExitCode::SUCCESS
            }
            Some(("error", why)) => {
                eprintln!("remoteagentd: {why}");
                ExitCode::FAILURE
            }
            _ => {
                eprintln!("remoteagentd: it exited while starting; its log: {log}");
                ExitCode::FAILURE
            }
        },
        Err(_) => {
            eprintln!(
                "remoteagentd: not started after {} s (waiting for a keyring?); its log: {log}",
                START_WAIT.as_secs()
            );
            ExitCode::FAILURE
        }
    }
}

fn daemonize(paths: &Paths, pidfile: Option<PathBuf>) -> anyhow::Result<Fork> {
    use anyhow::Context;
    let log_dir = paths
        .log_root
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.log_root.clone());
    remoteagentd::paths::ensure_private_dir(&log_dir)?;
    let log_file = log_dir.join("remoteagentd.log");
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_file)
        .with_context(|| format!("opening {}", log_file.display()))?;
    let pidfile = pidfile.unwrap_or_else(|| paths.socket_dir().join("remoteagentd.pid"));
    if let Some(dir) = pidfile.parent() {
        remoteagentd::paths::ensure_private_dir(dir)?;
    }
    let (reader, writer) = std::io::pipe().context("creating the start-up pipe")?;
    let outcome = daemonize::Daemonize::new()
        .pid_file(pidfile)
        .working_directory("/")
        .umask(0o077)
        .stderr(stderr)
        .execute();
    match outcome {
        daemonize::Outcome::Parent(result) => {
            result.context("forking")?;
            // Only the daemon may hold the writing end, so its exit is
            // seen as the end of the pipe.
            drop(writer);
            Ok(Fork::Parent {
                waiting: reader,
                log_file,
            })
        }
        daemonize::Outcome::Child(result) => {
            result.context("detaching")?;
            drop(reader);
            Ok(Fork::Child(writer))
        }
    }
}
