//! The real `remoteagent-cloud` binary in a temporary data dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::{Proc, bin};

pub const WEBHOOK_SECRET: &str = "e2e-webhook-secret";

pub struct Cloud {
    pub proc: Proc,
    pub url: String,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
    /// How it was started, to start it again in the same place.
    launch: Launch,
    /// The next webhook update's id (Telegram's grow by one).
    next_update: AtomicI64,
}

#[derive(Clone)]
struct Launch {
    binary: PathBuf,
    rust_log: String,
    port: u16,
    redis_url: String,
    telegram_api: String,
    bot_token: String,
    database_url: Option<String>,
    /// More environment variables (a test's settings).
    extra: Vec<(String, String)>,
    /// The umask it starts with, when a test sets one: set in the child
    /// only, as the test process (shared by every test) keeps its own.
    umask: Option<u32>,
}

impl Launch {
    fn command(&self, dir: &Path) -> Command {
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut cmd = match self.umask {
            None => Command::new(&self.binary),
            Some(mask) => {
                let mut sh = Command::new("/bin/sh");
                sh.args(["-c", "umask \"$0\" && exec \"$@\""])
                    .arg(format!("{mask:03o}"))
                    .arg(&self.binary);
                sh
            }
        };
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("RUST_LOG", &self.rust_log)
            .env("REMOTEAGENT_BIND", format!("127.0.0.1:{}", self.port))
            .env("PUBLIC_URL", &url)
            .env("REMOTEAGENT_DATA_DIR", dir.join("data"))
            .env("REDIS_URL", &self.redis_url)
            .env("TELEGRAM_BOT_TOKEN", &self.bot_token)
            .env("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("TELEGRAM_API_BASE", &self.telegram_api);
        if let Some(db) = &self.database_url {
            cmd.env("DATABASE_URL", db);
        }
        for (key, value) in &self.extra {
            cmd.env(key, value);
        }
        cmd
    }
}

impl Cloud {
    /// Starts the cloud on a free port against `redis_url`, the fake Bot API
    /// at `telegram_api` (accepting `bot_token`), and `database_url` (None:
    /// its embedded SQLite).
    pub async fn start(
        redis_url: &str,
        telegram_api: &str,
        bot_token: &str,
        database_url: Option<&str>,
    ) -> Result<Cloud> {
        Self::start_env(redis_url, telegram_api, bot_token, database_url, &[]).await
    }

    /// Like [`Cloud::start`], with `extra` environment variables (a test's
    /// settings).
    pub async fn start_env(
        redis_url: &str,
        telegram_api: &str,
        bot_token: &str,
        database_url: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<Cloud> {
        let launch = Launch {
            binary: bin("remoteagent-cloud"),
            rust_log: "info,remoteagent_cloud=debug".to_string(),
            port: remoteagent_testkit::free_port(),
            redis_url: redis_url.to_string(),
            telegram_api: telegram_api.to_string(),
            bot_token: bot_token.to_string(),
            database_url: database_url.map(str::to_string),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            umask: None,
        };
        Self::launch(launch, tempfile::tempdir()?).await
    }

    /// Like [`Cloud::start`], with the binary and the log filter chosen by
    /// the caller (the benchmarks run a release build and log at `warn`).
    pub async fn start_binary(
        binary: &Path,
        rust_log: &str,
        redis_url: &str,
        telegram_api: &str,
        bot_token: &str,
        database_url: Option<&str>,
    ) -> Result<Cloud> {
        Self::start_binary_env(
            binary,
            rust_log,
            redis_url,
            telegram_api,
            bot_token,
            database_url,
            &[],
        )
        .await
    }

    /// [`Cloud::start_binary`] with `extra` environment variables (the
    /// settings a benchmark compares).
    pub async fn start_binary_env(
        binary: &Path,
        rust_log: &str,
        redis_url: &str,
        telegram_api: &str,
        bot_token: &str,
        database_url: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<Cloud> {
        let launch = Launch {
            binary: binary.to_path_buf(),
            rust_log: rust_log.to_string(),
            port: remoteagent_testkit::free_port(),
            redis_url: redis_url.to_string(),
            telegram_api: telegram_api.to_string(),
            bot_token: bot_token.to_string(),
            database_url: database_url.map(str::to_string),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            umask: None,
        };
        Self::launch(launch, tempfile::tempdir()?).await
    }

    /// Like [`Cloud::start`], in `dir` (its data dir is `dir/data`, which
    /// the caller may have prepared) with `extra` environment variables.
    pub async fn start_with(
        redis_url: &str,
        telegram_api: &str,
        bot_token: &str,
        dir: tempfile::TempDir,
        extra: &[(&str, &str)],
    ) -> Result<Cloud> {
        Self::start_with_umask(redis_url, telegram_api, bot_token, dir, extra, None).await
    }

    /// Like [`Cloud::start_with`], the process started with `umask` (when
    /// given) instead of the test process's.
    pub async fn start_with_umask(
        redis_url: &str,
        telegram_api: &str,
        bot_token: &str,
        dir: tempfile::TempDir,
        extra: &[(&str, &str)],
        umask: Option<u32>,
    ) -> Result<Cloud> {
        let launch = Launch {
            binary: bin("remoteagent-cloud"),
            rust_log: "info,remoteagent_cloud=debug".to_string(),
            port: remoteagent_testkit::free_port(),
            redis_url: redis_url.to_string(),
            telegram_api: telegram_api.to_string(),
            bot_token: bot_token.to_string(),
            database_url: None,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            umask,
        };
        Self::launch(launch, dir).await
    }

    async fn launch(launch: Launch, dir: tempfile::TempDir) -> Result<Cloud> {
        let url = format!("http://127.0.0.1:{}", launch.port);
        let proc = Proc::spawn("remoteagent-cloud", launch.command(dir.path()), dir.path())?;
        let mut cloud = Cloud {
            proc,
            url,
            dir,
            http: reqwest::Client::new(),
            launch,
            next_update: AtomicI64::new(1),
        };
        cloud.wait_healthy().await?;
        Ok(cloud)
    }

    /// SIGKILL (a crash: no clean-up, its session locks left to expire),
    /// then the same binary again on the same port, data dir and database,
    /// as a supervisor restarting it would. Its log continues in the same
    /// file.
    pub async fn crash_and_restart(&mut self) -> Result<()> {
        self.proc.kill();
        self.proc = Proc::spawn(
            "remoteagent-cloud",
            self.launch.command(self.dir.path()),
            self.dir.path(),
        )?;
        self.wait_healthy().await
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let health = format!("{}/healthz", self.url);
        for _ in 0..1500 {
            // A cloud that refused its settings has said why: no need to
            // wait out the guard.
            if self.proc.has_exited() {
                bail!("the cloud exited:\n{}", self.proc.tail(40));
            }
            if let Ok(resp) = self.http.get(&health).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the cloud did not become healthy:\n{}", self.proc.tail(40))
    }

    /// A new update id, one more than the last.
    pub fn update_id(&self) -> i64 {
        self.next_update.fetch_add(1, Ordering::SeqCst)
    }

    /// Delivers `update`, which the cloud must accept (200).
    pub async fn deliver(&self, update: &Value) {
        let status = self.update(update).await.unwrap();
        assert_eq!(status, 200, "webhook answered {status}");
    }

    /// The user `user` types `text` in their private chat with the bot.
    pub async fn say(&self, user: i64, text: &str) {
        let update =
            remoteagent_testkit::telegram::updates::text(self.update_id(), user, user, text);
        self.deliver(&update).await;
    }

    /// Delivers a webhook update the way Telegram does; returns the status.
    pub async fn update(&self, update: &Value) -> Result<u16> {
        let resp = self
            .http
            .post(format!("{}/api/telegram", self.url))
            .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
            .json(update)
            .send()
            .await?;
        Ok(resp.status().as_u16())
    }
}
