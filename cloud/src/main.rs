//! `remoteagent-cloud [--config FILE] [serve | cron | set-webhook]`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use remoteagent_cloud::{App, Config, app, cron};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "remoteagent-cloud",
    version,
    about = "RemoteAgent cloud: Telegram bot, pairing API, output forwarder",
    after_help = CONFIG_HELP
)]
struct Cli {
    /// A TOML file with the same keys as the environment variables.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

const CONFIG_HELP: &str = "Configuration (environment, or the same keys in the --config TOML file):
  PUBLIC_URL                 where users and daemons reach this server (required)
  TELEGRAM_BOT_TOKEN         the bot's token (required)
  TELEGRAM_WEBHOOK_SECRET    secret token Telegram sends with each update (required)
  TELEGRAM_API_BASE          https://api.telegram.org, or `console` to print messages
  REMOTEAGENT_BIND           listen address [127.0.0.1:8080]
  REMOTEAGENT_DATA_DIR       data directory [XDG data dir/remoteagent-cloud]
  DATABASE_URL               sqlite:… or postgres://… [SQLite file in the data dir]
  REDIS_URL                  [redis://127.0.0.1:6379]
  PUBLIC_REDIS_URL           the Redis URL daemons are told [REDIS_URL without credentials]
  REDIS_ACL                  per-agent Redis users; false for servers without ACL [true]
  REMOTEAGENT_SIGNING_KEY    base64url Ed25519 seed [read or generated in the data dir]
  FREE_PLAN_AGENTS           agents allowed after the trial [1]
  TRIAL_DAYS                 trial length [14]
  FORWARDER_MAX_PAGES        pages of output shown live per session; then a file [8]
  FORWARDER_ORPHAN_SECS      end a silent session whose agent is offline this long [600]
  TRUSTED_PROXIES            comma-separated CIDRs of reverse proxies whose X-Forwarded-For
                             is believed (the rightmost address not in the list is the
                             client, e.g. for the /api/pair rate limit) [none: the TCP peer]
  METRICS_TOKEN              if set, GET /metrics requires `Authorization: Bearer <token>`
  ALLOW_GROUP_PROMPTS        group chats count as opted in without /allowgroup [false]";

#[derive(Subcommand)]
enum Command {
    /// Serve the webhook, the API and the forwarder (the default).
    Serve,
    /// Send due trial reminders once and exit.
    Cron,
    /// Register {PUBLIC_URL}/api/telegram as the bot's webhook.
    SetWebhook,
}

fn main() -> std::process::ExitCode {
    // Before any file is created and before SQLite opens: the data dir and
    // the database are for this user only.
    remoteagent_cloud::data_dir::restrict_umask();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
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
            let telegram = app::telegram_client(&config);
            let url = format!("{}/api/telegram", config.public_url);
            telegram
                .set_webhook(&url, &config.webhook_secret)
                .await
                .context("setWebhook")?;
            println!("webhook set to {url}");
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
