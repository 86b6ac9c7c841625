//! The daemon's life: bind the control socket (refusing to run twice), load
//! the paired agents, serve requests, reload the config on SIGHUP, and on
//! SIGTERM/SIGINT stop accepting, shut every agent down concurrently,
//! remove the socket.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::agent::AgentSettings;
use crate::approval::ApprovalSettings;
use crate::approval::hook::HookTarget;
use crate::config::Config;
use crate::control::{BindError, ControlServer};
use crate::paths::Paths;
use crate::secrets::SecretStore;
use crate::seen_envelopes::SeenEnvelopes;
use crate::state::{StateDir, StateError};
use crate::supervisor::Supervisor;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("loading the paired agents: {0}")]
    State(#[from] StateError),
    #[error("creating the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(
    paths: Paths,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    run_with_ready(paths, config, shutdown, || {}).await
}

/// [`run`], calling `ready` once the socket is bound and the agents are
/// loaded: `--daemonize` tells the waiting parent then, so it can exit 0
/// only when the daemon really started.
pub async fn run_with_ready(
    paths: Paths,
    config: Config,
    shutdown: CancellationToken,
    ready: impl FnOnce(),
) -> Result<(), DaemonError> {
    // The socket comes first: a second daemon must fail here, before it
    // starts duplicate agent tasks.
    let server = ControlServer::bind(&paths.socket).await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %paths.socket.display(),
        cloud = %config.cloud_url,
        secret_store = ?config.secret_store,
        "remoteagentd starting"
    );
    // Claude Code's approval hook runs this very executable as a client.
    let hook = match HookTarget::current(paths.socket.clone()) {
        Ok(target) => Some(target),
        Err(e) => {
            tracing::warn!(error = %e, "cannot locate our own executable: Claude Code runs without the approval hook");
            None
        }
    };
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(std::path::PathBuf::from);
    let settings = AgentSettings {
        log_root: paths.log_root.clone(),
        abort_grace: config.abort_grace(),
        max_prompt_bytes: config.max_prompt_bytes,
        approval: ApprovalSettings {
            policies: config.approval_policies(home.as_deref()),
            hook,
            board: Default::default(),
            rules: crate::approval::rules::RuleStore::new(paths.rules_dir.clone()),
        },
        seen: Arc::new(SeenEnvelopes::new(paths.envelopes_dir.clone())),
        stream_budget: config.output.stream_budget_bytes(),
        log_limits: config.logs.limits(),
        log_events: Default::default(),
        outbox_hint: config.outbox.hint,
        inbox: crate::inbox::InboxSettings {
            root: paths.inbox_root.clone(),
            limits: config.attachments.limits(),
        },
        conversations: crate::conversations::History::new(paths.conversations_dir.clone()),
        worktrees: crate::worktrees::WorktreeSettings {
            root: paths.worktrees_root.clone(),
            projects: config.worktree_projects(home.as_deref()),
            running: Default::default(),
        },
    };
    let secrets = SecretStore::new(config.secret_store, paths.secrets_dir.clone());
    let state = StateDir::new(paths.agents_dir.clone());
    let (supervisor, notices) =
        Supervisor::new(config, settings, secrets, state, paths.socket.clone())?;
    supervisor.set_config_file(paths.config_file.clone());
    if let Err(e) = supervisor.load_all().await {
        ControlServer::remove_socket(&paths.socket);
        return Err(e.into());
    }
    // Whatever way `run` ends (a panic included), the background tasks that
    // watch the token stop with it.
    let _cancel_on_exit = shutdown.clone().drop_guard();
    let notice_task = tokio::spawn(supervisor.clone().run_notices(notices));
    let refresh_task = tokio::spawn(crate::token_refresh::run(
        supervisor.clone(),
        shutdown.clone(),
    ));

    // Installed before READY: from then on `systemctl reload` may send
    // SIGHUP, whose default action would end the daemon.
    let reload_task = match reload_on_sighup(
        supervisor.clone(),
        paths.config_file.clone(),
        shutdown.clone(),
    ) {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP: use `remoteagentctl reload` to reload the config");
            None
        }
    };

    // Under systemd (Type=notify) this tells it we are up: the socket is
    // bound and accepting, the agents are loaded. Elsewhere it does nothing.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
    ready();
    server.serve(supervisor.clone(), shutdown).await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutting down: stopping every agent");
    supervisor.shutdown_all().await;
    notice_task.abort();
    refresh_task.abort();
    if let Some(task) = reload_task {
        task.abort();
    }
    drop(server);
    ControlServer::remove_socket(&paths.socket);
    tracing::info!("remoteagentd stopped");
    Ok(())
}

/// Reads the config file again on every SIGHUP until `shutdown`.
fn reload_on_sighup(
    supervisor: Arc<Supervisor>,
    config_file: PathBuf,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                got = hup.recv() => {
                    if got.is_none() {
                        break;
                    }
                    tracing::info!("SIGHUP received: reloading the config");
                    // The outcome is logged and kept for `status`.
                    let _ = supervisor.reload_config(&config_file);
                }
            }
        }
    }))
}

/// Cancels `token` on the first SIGTERM or SIGINT; exits at once on a
/// second one.
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        token.cancel();
        // A second signal while shutting down means "now": the user gave
        // up waiting for runners to stop.
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("remoteagentd: second signal, exiting without waiting for agents");
        std::process::exit(1);
    });
    Ok(())
}
