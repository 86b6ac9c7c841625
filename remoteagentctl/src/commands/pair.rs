//! `remoteagentctl pair [PATH]`: shows the pairing code, waits for the user
//! to enter it in Telegram, then reports the result. Ctrl-C cancels (the
//! daemon notices the closed connection and gives up the pairing).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
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
                    warnings,
                } => {
                    for warning in &warnings {
                        eprintln!("warning: {}", shown(warning));
                    }
                    if !args.json {
                        show_code(&code, &connect_url, expires_at_ms, bot_username.as_deref())?;
                    }
                    if std::io::stderr().is_terminal() {
                        spinner = Some(countdown(expires_at_ms));
                    }
                }
                Response::Paired { agent } => {
                    if !args.json {
                        if let Some(bar) = spinner.take() {
                            bar.finish_and_clear();
                        }
                        out(&format!(
                            "Paired '{}' ({}) for {} with runner {}.",
                            shown(&agent.name),
                            agent.id,
                            shown(&agent.path.display().to_string()),
                            agent.runner.display_name()
                        ))?;
                        if agent.online {
                            out("Send it a message in Telegram to start a run.")?;
                        } else {
                            out("It is not online yet: the daemon has not reached Redis. \
                                 `remoteagentctl list` shows when it is; until then the bot answers that it is offline.")?;
                        }
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
    };
    let result = tokio::select! {
        result = wait => result.map_err(|e| CliError::new(e.exit, format!("pairing failed: {}", e.message))),
        // Not a failure: the user chose to stop. The daemon notices the
        // closed connection and gives the pairing up.
        _ = tokio::signal::ctrl_c() => Err(CliError::error("cancelled: nothing was paired")),
    };
    if let Some(bar) = spinner.take() {
        bar.finish_and_clear();
    }
    result
}

/// The code, the deep link that pairs in one tap (the bot's `/start CODE`
/// pairs), a QR code of it when a person is looking, and the web page.
fn show_code(
    code: &str,
    connect_url: &str,
    expires_at_ms: u64,
    bot: Option<&str>,
) -> Result<(), CliError> {
    // All of these come from the cloud: shown, never trusted as text.
    let code = shown(code);
    let bot = bot.map(|b| shown(b.trim_start_matches('@')));
    out(&format!("Pairing code: {code}"))?;
    match &bot {
        Some(bot) => match deep_link(bot, &code) {
            Some(link) => {
                out(&format!(
                    "Open {link} on your phone, or send `/pair {code}` to @{bot} in Telegram,"
                ))?;
                if std::io::stdout().is_terminal()
                    && let Some(qr) = qr_code(&link)
                {
                    out(&qr)?;
                }
            }
            None => out(&format!("Send `/pair {code}` to @{bot} in Telegram,"))?,
        },
        None => out(&format!(
            "Send `/pair {code}` to the RemoteAgent bot in Telegram,"
        ))?,
    }
    // Without a public URL (a cloud in poll mode) there is no web page,
    // or the cloud's link is the deep link already shown.
    if !connect_url.is_empty() && !connect_url.contains("t.me/") {
        out(&format!("or open {}", shown(connect_url)))?;
    }
    out(&format!(
        "The code expires in {}.",
        remoteagent_proto::text::plural::count(minutes_left(expires_at_ms), "minute", "minutes")
    ))?;
    Ok(())
}

/// Prints a line. A reader that went away (`pair | head -3`) does not end
/// the pairing: the phone may still send the code, and the exit code says
/// how it ended.
fn out(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::error(format!("writing to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// `https://t.me/BOT?start=CODE`, when both are what Telegram accepts in a
/// deep link (a start parameter is `[A-Za-z0-9_-]{1,64}`).
fn deep_link(bot: &str, code: &str) -> Option<String> {
    let ok = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    (ok(bot, 64) && ok(code, 64)).then(|| format!("https://t.me/{bot}?start={code}"))
}

/// The link as a QR code of half-height blocks, light on dark as phones
/// read best from a terminal.
fn qr_code(link: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(link.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build(),
    )
}

/// A spinner with a live countdown to the code's expiry.
fn countdown(expires_at_ms: u64) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let left = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
        let ms = expires_at_ms.saturating_sub(remoteagent_proto::now_ms());
        let secs = ms.div_ceil(1000);
        let _ = if secs == 0 {
            write!(w, "the code has expired")
        } else {
            write!(w, "expires in {}:{:02}", secs / 60, secs % 60)
        };
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} waiting for the code to be entered, {left} (Ctrl-C to cancel)",
    ) {
        bar.set_style(style.with_key("left", left));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deep_link_only_for_what_telegram_accepts() {
        assert_eq!(
            deep_link("RemoteAgentBot", "XK9-4TZ").as_deref(),
            Some("https://t.me/RemoteAgentBot?start=XK9-4TZ")
        );
        assert_eq!(deep_link("bot", "a b"), None);
        assert_eq!(deep_link("bot/evil", "XK9-4TZ"), None);
        assert_eq!(deep_link("", "XK9-4TZ"), None);
    }

    #[test]
    fn the_qr_code_is_blocks_of_text() {
        let qr = qr_code("https://t.me/RemoteAgentBot?start=XK9-4TZ").unwrap();
        assert!(qr.lines().count() > 10, "{qr}");
        assert!(qr.chars().all(|c| " █▀▄\n".contains(c)), "{qr}");
    }
}
