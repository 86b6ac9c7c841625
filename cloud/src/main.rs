//! `remoteagent-cloud [--config FILE] [serve | cron | set-webhook | delete-webhook]`.
//! The settings and their help come from [`remoteagent_cloud::config::SETTINGS`].

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use remoteagent_cloud::config::{ExposeSecret, settings_help};
use remoteagent_cloud::{App, Config, app, cron};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "remoteagent-cloud",
    version,
    about = "RemoteAgent cloud: Telegram bot, pairing API, output forwarder"
)]
struct Cli {
    /// A TOML file with the same keys as the environment variables.
    #[arg(long, global = true, env = "REMOTEAGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the webhook or poll Telegram, the API and the forwarder (the default).
    Serve,
    /// Send due trial reminders once and exit.
    Cron,
    /// Register {PUBLIC_URL}/api/telegram as the bot's webhook (webhook mode).
    SetWebhook,
    /// Remove the bot's webhook, so that poll mode can fetch updates.
    DeleteWebhook,
}

fn main() -> std::process::ExitCode {
    // Before any file is created and before SQLite opens: the data dir and
    // the database are for this user only.
    remoteagent_cloud::data_dir::restrict_umask();
    let matches = Cli::command().after_help(settings_help()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log
        // file or the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("remoteagent-cloud: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line: the whole cause chain, no backtrace.
            eprintln!("remoteagent-cloud: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref()).context("configuration")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Cron => {
            let app = App::build(config).await?;
            let sent = cron::send_trial_reminders(&app.state).await?;
            tracing::info!(sent, "trial reminders done");
            Ok(())
        }
        Command::SetWebhook => {
            let (Some(public_url), Some(secret)) = (&config.public_url, &config.webhook_secret)
            else {
                anyhow::bail!(
                    "set-webhook is for webhook mode: set PUBLIC_URL and TELEGRAM_WEBHOOK_SECRET \
                     (TELEGRAM_MODE is {})",
                    config.telegram_mode.as_str()
                );
            };
            let telegram = app::telegram_client(&config);
            let url = format!("{public_url}/api/telegram");
            telegram
                .set_webhook(&url, secret.expose_secret())
                .await
                .context("setWebhook")?;
            println!("webhook set to {url}");
            Ok(())
        }
        Command::DeleteWebhook => {
            app::telegram_client(&config)
                .delete_webhook()
                .await
                .context("deleteWebhook")?;
            println!("webhook deleted: the bot's updates can now be polled (TELEGRAM_MODE=poll)");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let app = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let shutdown = app.state.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    app.serve(listener).await.context("serving")?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
