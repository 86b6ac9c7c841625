//! Building the application from its configuration and serving it.

use std::net::SocketAddr;
use std::time::Duration;

use remoteagent_rediskit::{self as rediskit, conn};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ExposeSecret, TelegramMode};
use crate::db::{Db, sessions};
use crate::forwarder::{Forwarder, ForwarderOptions, SessionFinished};
use crate::keys::{self, KeyFileError};
use crate::metrics::Metrics;
use crate::redis_acl::Acl;
use crate::state::{AppState, Inner};
use crate::telegram::{Outbox, OutboxConfig, Telegram};
use crate::{cron, http};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    /// One line: what failed, its cause, and the fix (the cause is kept
    /// as text, so that `{:#}` does not repeat it once per source).
    #[error("cannot use the database {url}: {cause}; {fix}")]
    Db {
        url: String,
        cause: String,
        fix: &'static str,
    },
    #[error("cannot use Redis at {url}: {cause}; {fix}")]
    Redis {
        url: String,
        cause: String,
        fix: &'static str,
    },
}

/// A built application, ready to serve.
pub struct App {
    pub state: AppState,
    finished: mpsc::UnboundedReceiver<SessionFinished>,
}

/// The Telegram client the configuration asks for.
pub fn telegram_client(config: &Config) -> Telegram {
    if config.telegram_api_base == "console" {
        Telegram::console()
    } else {
        Telegram::api(&config.telegram_api_base, config.bot_token())
    }
}

/// The database's refusal as one line with its fix.
fn db_error(url: String, e: &sqlx::Error) -> StartError {
    let (cause, fix) = match e {
        sqlx::Error::Io(io) => (
            io.to_string(),
            "is the database server running there? Start it, or fix DATABASE_URL",
        ),
        sqlx::Error::Database(db) => (
            db.message().to_string(),
            "check the user, password and database name in DATABASE_URL",
        ),
        sqlx::Error::PoolTimedOut => (
            "no connection within 10 s".to_string(),
            "is the database reachable from here? Check DATABASE_URL",
        ),
        sqlx::Error::Configuration(c) => (c.to_string(), "fix DATABASE_URL"),
        other => (
            other.to_string(),
            "check DATABASE_URL and the database's log",
        ),
    };
    StartError::Db { url, cause, fix }
}

impl App {
    pub async fn build(config: Config) -> Result<App, StartError> {
        crate::data_dir::prepare(&config)?;
        let key = keys::load_or_generate(
            config.signing_key.as_ref().map(|k| k.expose_secret()),
            &config.data_dir,
        )?;
        let safe_db_url = crate::config::redact_url(config.database_url.expose_secret());
        let db = Db::connect(config.database_url.expose_secret())
            .await
            .map_err(|e| db_error(safe_db_url, &e))?;
        let redis_err = |e: redis::RedisError| StartError::Redis {
            url: config.redis_url_redacted(),
            cause: e.to_string(),
            fix: if e.is_connection_refusal() || e.is_timeout() || e.is_io_error() {
                "start Redis there (`sudo systemctl start redis-server`), or fix REDIS_URL"
            } else if e.kind() == redis::ErrorKind::AuthenticationFailed
                || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
            {
                "put the right user and password in REDIS_URL (redis://USER:PASSWORD@HOST:PORT)"
            } else {
                "check REDIS_URL"
            },
        };
        let target = config.redis_target();
        let no_answer = || {
            redis_err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer within 5 s",
            )))
        };
        // One plain connection first: a refused Redis is then reported at
        // once, where the manager would retry with backoff for ~10 s.
        tokio::time::timeout(
            Duration::from_secs(5),
            conn::dedicated(&target, &rediskit::Options::default()),
        )
        .await
        .map_err(|_| no_answer())?
        .map_err(redis_err)?;
        let shared = rediskit::Options {
            connection_timeout: Some(Duration::from_secs(5)),
            response_timeout: Some(Duration::from_secs(5)),
            ..rediskit::Options::default()
        };
        let redis = conn::managed(&target, &shared).await.map_err(redis_err)?;
        let telegram = telegram_client(&config);
        let (bot_username, topics_in_private) = match tokio::time::timeout(
            Duration::from_secs(10),
            telegram.get_me(),
        )
        .await
        {
            Ok(Ok(me)) => (me.username, me.has_topics_enabled),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "getMe failed; the /connect page will have no login widget, and private chats no topics");
                (None, false)
            }
            Err(_) => {
                tracing::warn!(
                    "getMe timed out; the /connect page will have no login widget, and private chats no topics"
                );
                (None, false)
            }
        };
        let (tx, finished) = mpsc::unbounded_channel();
        let forwarder = Forwarder::with_options(
            target.clone(),
            Outbox::new(telegram.clone(), OutboxConfig::default()),
            tx,
            config.replica_id.clone(),
            ForwarderOptions {
                max_pages: config.forwarder_max_pages,
                orphan_after: Duration::from_secs(config.forwarder_orphan_secs),
                final_notify: config.final_notify,
                notify_db: Some(db.clone()),
                stream_mode: config.stream_mode,
                ..ForwarderOptions::default()
            },
        );
        let state = AppState::new(Inner {
            acl: Acl::new(config.redis_acl, redis.clone()),
            outbox: forwarder.outbox().clone(),
            forwarder,
            stt: config.stt.as_ref().map(crate::stt::Stt::new),
            config,
            db,
            redis,
            key,
            telegram,
            metrics: Metrics::default(),
            bot_username,
            topics_in_private,
            unknown_users: Default::default(),
            lanes: Default::default(),
            shutdown: CancellationToken::new(),
        });
        Ok(App { state, finished })
    }

    /// Serves HTTP on `listener` and runs the background tasks until
    /// `state.shutdown` is cancelled; then finishes in-flight requests.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let App { state, finished } = self;
        let recorder = tokio::spawn(record_finished(state.clone(), finished));
        state.forwarder.spawn_resumer(state.shutdown.child_token());
        let cron = cron::spawn(state.clone());
        let acl_watch = crate::redis_acl::spawn_user_watch(
            state.acl.clone(),
            state.db.clone(),
            state.shutdown.clone(),
        );
        let poller = match state.config.telegram_mode {
            TelegramMode::Poll => Some(crate::poll::spawn(state.clone())),
            TelegramMode::Webhook => None,
        };
        let shutdown = state.shutdown.clone();
        let app = http::router(state.clone());
        tracing::info!(
            addr = %listener.local_addr()?,
            telegram = state.config.telegram_mode.as_str(),
            "serving"
        );
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
        shutdown.cancel();
        state.forwarder.shutdown();
        let _ = cron.await;
        let _ = acl_watch.await;
        if let Some(poller) = poller {
            let _ = poller.await;
        }
        recorder.abort();
        tracing::info!("stopped");
        served
    }
}

/// Records each session's end as the forwarder reports it.
async fn record_finished(state: AppState, mut finished: mpsc::UnboundedReceiver<SessionFinished>) {
    while let Some(f) = finished.recv().await {
        let result = sessions::finish(
            &state.db,
            &f.session_id,
            f.status.as_str(),
            f.exit_code.map(i64::from),
            Some(f.duration_ms as i64),
        )
        .await;
        // The agent is free: its next queued prompt runs (on a task of its
        // own, so that the next report is not held up).
        tokio::spawn(crate::bot::dequeue::after_run(
            state.clone(),
            f.agent_id.clone(),
        ));
        match result {
            Ok(_) => {
                tracing::info!(agent = %f.agent_id, session = %f.session_id, status = f.status.as_str(), "session finished")
            }
            Err(e) => {
                tracing::warn!(agent = %f.agent_id, session = %f.session_id, error = %e, "recording a finished session")
            }
        }
    }
}
