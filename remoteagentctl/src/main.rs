//! `remoteagentctl`: the command-line client of `remoteagentd`.
//!
//! Exit codes, for scripts:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | error (refused, expired, cloud unreachable, …); `service status`: a unit is not active, or no service manager can be asked |
//! | 2 | bad usage |
//! | 3 | the daemon is not running |
//! | 4 | no such agent, session or approval request, or an ambiguous name or id |

#[cfg(test)]
mod cli_checks;
mod client;
mod commands;
mod completion;
mod error;
mod man;
mod service;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use remoteagent_proto::runner::Preset;

use crate::client::Client;
use crate::error::{CliError, exit};

const EXIT_CODES: &str = "Exit codes: 0 ok, 1 error (`service status`: not active, or no service manager), 2 usage, 3 daemon not running, 4 agent/run/approval request not found or ambiguous.";

#[derive(Debug, Parser)]
#[command(name = "remoteagentctl", version, disable_help_subcommand = true, about = "Control remoteagentd: pair project folders with Telegram, list, stop, logs, sessions, answer approval requests, unpair.", after_help = EXIT_CODES)]
struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, env = "REMOTEAGENT_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pair a project folder: prints a code to send to the Telegram bot.
    Pair {
        /// The project folder (default: the current directory).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// The agent's name (default: the folder's name).
        #[arg(long)]
        name: Option<String>,
        /// The AI CLI to run: claude, codex, codex-exec, aider or gemini
        /// (default claude). codex runs `codex app-server`, which asks
        /// before tool uses; codex-exec runs `codex exec`, for Codex
        /// versions without app-server.
        #[arg(long, ignore_case = true, value_parser = completion::runner_parser(), conflicts_with = "command")]
        runner: Option<Preset>,
        /// Any other program, e.g. --command './my-agent --fast'. Split like a
        /// shell would, but stored and run as an argument list, never through a
        /// shell. The prompt replaces an argument `{prompt}` or is appended.
        #[arg(long, value_name = "'ARGV...'")]
        command: Option<String>,
    },
    /// List the paired agents: a table on a terminal, tab-separated lines
    /// otherwise (for scripts), or JSON with --json.
    List {
        /// Leave out the header line.
        #[arg(long)]
        no_headers: bool,
    },
    /// Show the daemon's status.
    Status,
    /// Make the daemon read its config file again (as SIGHUP does) and say
    /// what changed.
    Reload,
    /// Abort an agent's running session.
    Stop {
        /// Agent name or id prefix.
        agent: String,
    },
    /// Show the logs of runs, like journalctl: the newest run's last lines,
    /// or one --run, or all --since a time; -f follows new lines (and later
    /// runs); --list lists the runs.
    Logs(commands::logs::LogsArgs),
    /// List an agent's recent sessions (conversations with the AI: when,
    /// runs, turns, cost, first prompt) and the command that continues each
    /// in a terminal in the project (`claude --resume ID`).
    Sessions {
        /// Agent name or id prefix.
        agent: String,
    },
    /// List an agent's approval rules (saved from the phone's "this
    /// session" / "always here" buttons), or revoke one with --revoke N.
    Rules {
        /// Agent name or id prefix.
        agent: String,
        /// Revoke the rule with this number first.
        #[arg(long, value_name = "N")]
        revoke: Option<u32>,
    },
    /// Show what an agent's last run (or --session) changed, as a diff.
    Diff(commands::checkpoint::DiffArgs),
    /// Put the files an agent's last run (or --session) changed back as
    /// they were before it; refused when one changed since, unless --force.
    Undo(commands::checkpoint::UndoArgs),
    /// Commit exactly what an agent's last run (or --session) changed, on
    /// the current branch or --branch; never pushes.
    Commit(commands::checkpoint::CommitArgs),
    /// List the git worktrees an agent with `worktrees = true` ran prompts
    /// in while busy (branch, state, age, files changed); --clean removes
    /// the finished ones and keeps their branches.
    Worktrees {
        /// Agent name or id prefix.
        agent: String,
        /// Remove the finished worktrees (their branches stay).
        #[arg(long)]
        clean: bool,
    },
    /// List the tool-approval requests waiting for an answer, of all agents.
    Approvals,
    /// Approve a waiting tool-approval request (instead of on the phone);
    /// a question is approved with its --answer, a plan as it is.
    Approve {
        /// The request id, or an unambiguous prefix of it.
        id: String,
        /// Why, passed on to the agent.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// The answer to a question (Claude's AskUserQuestion): an option's
        /// label or your own words.
        #[arg(long, value_name = "TEXT")]
        answer: Option<String>,
    },
    /// Deny a waiting tool-approval request (instead of on the phone);
    /// declines a question, rejects a plan, or with --answer asks for the
    /// plan to be revised.
    Deny {
        /// The request id, or an unambiguous prefix of it.
        id: String,
        /// Why, passed on to the agent (and shown on the phone).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// For a plan (Claude's ExitPlanMode): what to change; Claude
        /// revises the plan and asks again.
        #[arg(long, value_name = "TEXT")]
        answer: Option<String>,
    },
    /// Unpair an agent: revoke it in the cloud and forget it here.
    Unpair {
        /// Agent name or id prefix.
        agent: String,
    },
    /// Check every part (daemon, config, secret store, cloud, Redis logins,
    /// runners, login service), one line each, with the fix for a problem.
    /// Exits 1 when a check failed.
    Doctor,
    /// From a bot token to a running cloud and daemon on this machine: no
    /// public URL needed (the cloud polls Telegram). Reads the token from
    /// stdin or --bot-token-file, never from the command line. Running it
    /// again changes only what is not right yet.
    Setup {
        /// A file holding the bot token from @BotFather (default: stdin).
        #[arg(long, value_name = "FILE")]
        bot_token_file: Option<PathBuf>,
        /// Show what would be checked, written and started, without doing it.
        #[arg(long)]
        print: bool,
        /// The Redis the local cloud uses (Redis 6 or newer): one URL, or a
        /// Redis Cluster's nodes as a comma-separated list of URLs.
        #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        /// Where the local cloud listens.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// The Telegram Bot API (tests point this at a fake one).
        #[arg(long, env = "TELEGRAM_API_BASE", hide = true, default_value = setup::TELEGRAM_API)]
        telegram_api: String,
    },
    /// Run remoteagentd (or, with --cloud, the self-hosted cloud) as a login
    /// service: a systemd user unit / LaunchAgent. Start, stop and restart
    /// also work without a service manager, directly.
    Service(service::cli::ServiceArgs),
    /// Restart remoteagentd: the same as `service restart`.
    Restart {
        /// Restart the self-hosted cloud (remoteagent-cloud.service) instead.
        #[arg(long)]
        cloud: bool,
        /// Show what would be done, without doing it.
        #[arg(long)]
        print: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages for remoteagentctl and its subcommands into DIR.
    Man {
        /// The directory to write `remoteagentctl*.1` into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// The paired agents' names, one a line, for shell completion; nothing
    /// (and exit 0) when the daemon does not answer at once.
    #[command(name = completion::AGENTS_HELPER, hide = true)]
    CompleteAgents,
}

/// Commands that do not talk to the daemon; `None` when `command` does.
fn run_local(command: &Command) -> Option<anyhow::Result<()>> {
    match command {
        Command::Completions { shell } => Some(completion::print_script(*shell, Cli::command())),
        Command::Man { out } => Some(write_man_pages(out)),
        _ => None,
    }
}

/// One page for the command and one per subcommand (`remoteagentctl-pair.1`).
fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    man::write_pages(Cli::command(), dir)
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let socket = client::socket_path(cli.socket);
    match cli.command {
        Command::Doctor => return commands::doctor::run(&socket, cli.json).await,
        Command::Setup {
            bot_token_file,
            print,
            redis_url,
            bind,
            telegram_api,
        } => {
            let args = setup::SetupArgs {
                bot_token_file,
                print,
                redis_url,
                bind,
                telegram_api,
                socket,
            };
            // Its errors are whole sentences with their fix.
            return setup::run(args)
                .await
                .map_err(|e| CliError::error(format!("setup: {e:#}")));
        }
        _ => {}
    }
    let mut client = Client::connect(&socket).await?;
    let json = cli.json;
    match cli.command {
        Command::Pair {
            path,
            name,
            runner,
            command,
        } => {
            commands::pair::run(
                &mut client,
                commands::pair::PairArgs {
                    path,
                    name,
                    runner,
                    command,
                    json,
                },
            )
            .await
        }
        Command::List { no_headers } => commands::list::run(&mut client, json, no_headers).await,
        Command::Status => commands::status::run(&mut client, json).await,
        Command::Reload => commands::reload::run(&mut client, json).await,
        Command::Stop { agent } => commands::stop::run(&mut client, agent, json).await,
        Command::Logs(args) => commands::logs::run(&mut client, args, json).await,
        Command::Unpair { agent } => commands::unpair::run(&mut client, agent, json).await,
        Command::Sessions { agent } => commands::sessions::run(&mut client, agent, json).await,
        Command::Rules { agent, revoke } => {
            commands::rules::run(&mut client, agent, revoke, json).await
        }
        Command::Diff(args) => commands::checkpoint::diff(&mut client, args, json).await,
        Command::Undo(args) => commands::checkpoint::undo(&mut client, args, json).await,
        Command::Commit(args) => commands::checkpoint::commit(&mut client, args, json).await,
        Command::Worktrees { agent, clean } => {
            commands::worktrees::run(&mut client, agent, clean, json).await
        }
        Command::Approvals => commands::approvals::list(&mut client, json).await,
        Command::Approve { id, reason, answer } => {
            commands::approvals::answer(&mut client, id, true, reason, answer, json).await
        }
        Command::Deny { id, reason, answer } => {
            commands::approvals::answer(&mut client, id, false, reason, answer, json).await
        }
        Command::Service(_)
        | Command::Restart { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Setup { .. }
        | Command::CompleteAgents
        | Command::Doctor => Ok(()),
    }
}

fn main() -> ExitCode {
    // clap exits with 2 on usage errors, as documented.
    let cli = Cli::parse();
    if let Command::CompleteAgents = cli.command {
        // Completion must stay quiet: no error, no non-zero exit.
        completion::print_agents(&client::socket_path(cli.socket));
        return ExitCode::SUCCESS;
    }
    // Service commands have their own exit codes (`service status`).
    match cli.command {
        Command::Service(args) => {
            return service::cli::main(&args, cli.json, &client::socket_path(cli.socket));
        }
        Command::Restart { cloud, print } => {
            let args = service::cli::ServiceArgs {
                action: service::cli::ServiceAction::Restart,
                cloud,
                print,
            };
            return service::cli::main(&args, cli.json, &client::socket_path(cli.socket));
        }
        _ => {}
    }
    if let Some(result) = run_local(&cli.command) {
        return match result {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => {
                eprintln!("remoteagentctl: {e:#}");
                ExitCode::from(exit::ERROR)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("remoteagentctl: cannot start: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) if json => {
            // A script asked for JSON: the error is JSON too, on stderr.
            eprintln!(
                "{}",
                serde_json::json!({"error": {"message": e.message, "exit": e.exit}})
            );
            e.exit_code()
        }
        Err(e) => {
            // Errors can carry the cloud's or the daemon's words.
            eprintln!(
                "remoteagentctl: {}",
                remoteagent_proto::text::for_terminal(&e.to_string())
            );
            e.exit_code()
        }
    }
}
