//! `remoteagentctl pair [PATH]`: shows the pairing code, waits for the user
//! to enter it in Telegram, then reports the result. Ctrl-C cancels (the
//! daemon notices the closed connection and gives up the pairing).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use remoteagent_proto::control::{PairRequest, Request, Response};
use remoteagent_proto::runner::{Preset, RunnerSpec};

use super::{print_json, shown};
use crate::client::Client;
use crate::error::CliError;

pub struct PairArgs {
    pub path: PathBuf,
    pub name: Option<String>,
    pub runner: Option<Preset>,
    pub command: Option<String>,
    pub json: bool,
}

/// Splits `--command` like a shell would; the result is stored as an argv
/// list and never run through a shell.
fn runner(args: &PairArgs) -> Result<Option<RunnerSpec>, CliError> {
    if let Some(command) = &args.command {
        let argv = shlex::split(command).ok_or_else(|| {
            CliError::new(
                crate::error::exit::USAGE,
                "--command has unbalanced quotes or a trailing backslash",
            )
        })?;
        if argv.is_empty() {
            return Err(CliError::new(
                crate::error::exit::USAGE,
                "--command needs a program to run",
            ));
        }
        return Ok(Some(RunnerSpec::Command(argv)));
    }
    Ok(args.runner.map(RunnerSpec::Preset))
}

fn minutes_left(expires_at_ms: u64) -> u64 {
    expires_at_ms
        .saturating_sub(remoteagent_proto::now_ms())
        .div_ceil(60_000)
}

pub async fn run(client: &mut Client, args: PairArgs) -> Result<(), CliError> {
    // The daemon runs elsewhere (another working directory), so it gets an
    // absolute path.
    let path = std::fs::canonicalize(&args.path)
        .map_err(|e| CliError::error(format!("cannot pair {}: {e}", args.path.display())))?;
    let runner = runner(&args)?;
    client
        .send(Request::Pair(PairRequest {
            path,
            name: args.name.clone(),
            runner,
        }))
        .await?;
    let mut spinner: Option<ProgressBar> = None;
    let wait = async {
        loop {
            let reply = client.next().await?;
            let Some(data) = reply.data else {
                if reply.is_last() {
                    return Err(CliError::error(
                        "remoteagentd ended the pairing without a result",
                    ));
                }
                continue;
            };
            if args.json {
                print_json(&data)?;
            }
            match data {
                Response::PairCode {
                    code,
                    connect_url,
                    expires_at_ms,
                    bot_username,
                } => {
                    if !args.json {
                        // All four come from the cloud.
                        let (code, connect_url) = (shown(&code), shown(&connect_url));
                        let bot = bot_username
                            .map(|b| format!("@{}", shown(b.trim_start_matches('@'))))
                            .unwrap_or_else(|| "the RemoteAgent bot".into());
                        println!("Pairing code: {code}");
                        println!("Send `/pair {code}` to {bot} in Telegram,");
                        println!("or open {connect_url}");
                        println!(
                            "The code expires in {} minute(s).",
                            minutes_left(expires_at_ms)
                        );
                    }
                    if std::io::stderr().is_terminal() {
                        let bar = ProgressBar::new_spinner()
                            .with_message("waiting for the code to be entered (Ctrl-C to cancel)");
                        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                            bar.set_style(style);
                        }
                        bar.enable_steady_tick(Duration::from_millis(120));
                        spinner = Some(bar);
                    }
                }
                Response::Paired { agent } => {
                    if !args.json {
                        if let Some(bar) = spinner.take() {
                            bar.finish_and_clear();
                        }
                        println!(
                            "Paired '{}' ({}) for {} with runner {}.",
                            shown(&agent.name),
                            agent.id,
                            shown(&agent.path.display().to_string()),
                            agent.runner.display_name()
                        );
                        if agent.online {
                            println!("Send it a message in Telegram to start a session.");
                        } else {
                            println!(
                                "It is not online yet: the daemon has not reached Redis. \
                                 `remoteagentctl list` shows when it is; until then the bot answers that it is offline."
                            );
                        }
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
    };
    let result = tokio::select! {
        result = wait => result,
        _ = tokio::signal::ctrl_c() => Err(CliError::error("pairing cancelled")),
    };
    if let Some(bar) = spinner.take() {
        bar.finish_and_clear();
    }
    result.map_err(|e| CliError::new(e.exit, format!("pairing failed: {}", e.message)))
}
