//! The real `remoteagent-cloud` binary in a temporary data dir.

use std::path::Path;
use std::process::Command;
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
        Self::start_binary(
            &bin("remoteagent-cloud"),
            "info,remoteagent_cloud=debug",
            redis_url,
            telegram_api,
            bot_token,
            database_url,
        )
        .await
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
        Self::start_configured(
            binary,
            rust_log,
            redis_url,
            telegram_api,
            bot_token,
            database_url,
            tempfile::tempdir()?,
            &[],
        )
        .await
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
        Self::start_configured(
            &bin("remoteagent-cloud"),
            "info,remoteagent_cloud=debug",
            redis_url,
            telegram_api,
            bot_token,
            None,
            dir,
            extra,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_configured(
        binary: &Path,
        rust_log: &str,
        redis_url: &str,
        telegram_api: &str,
        bot_token: &str,
        database_url: Option<&str>,
        dir: tempfile::TempDir,
        extra: &[(&str, &str)],
    ) -> Result<Cloud> {
        let port = remoteagent_testkit::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("RUST_LOG", rust_log)
            .env("REMOTEAGENT_BIND", format!("127.0.0.1:{port}"))
            .env("PUBLIC_URL", &url)
            .env("REMOTEAGENT_DATA_DIR", dir.path().join("data"))
            .env("REDIS_URL", redis_url)
            .env("TELEGRAM_BOT_TOKEN", bot_token)
            .env("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("TELEGRAM_API_BASE", telegram_api);
        if let Some(db) = database_url {
            cmd.env("DATABASE_URL", db);
        }
        for (key, value) in extra {
            cmd.env(key, value);
        }
        let proc = Proc::spawn("remoteagent-cloud", cmd, dir.path())?;
        let cloud = Cloud {
            proc,
            url,
            dir,
            http: reqwest::Client::new(),
        };
        cloud.wait_healthy().await?;
        Ok(cloud)
    }

    async fn wait_healthy(&self) -> Result<()> {
        let health = format!("{}/healthz", self.url);
        for _ in 0..1500 {
            if let Ok(resp) = self.http.get(&health).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the cloud did not become healthy:\n{}", self.proc.tail(40))
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
