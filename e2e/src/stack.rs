//! The parts every end-to-end test runs, started in one call: a private
//! Redis, the fake Bot API, the real cloud binary, and the real daemon in a
//! temporary home pointed at that cloud. A test's own `World` holds one and
//! adds what is particular to it (a project, a PostgreSQL database).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use remoteagent_testkit::RedisServer;
use remoteagent_testkit::telegram::FakeTelegram;

use crate::{Cloud, Daemon, Home, fixture};

/// Field order is drop order: the processes go before the servers they use.
pub struct Stack {
    pub daemon: Daemon,
    pub home: Home,
    pub cloud: Cloud,
    pub tg: FakeTelegram,
    pub redis: RedisServer,
}

impl Stack {
    /// On `redis`, with the cloud on `database_url` (`None`: its embedded
    /// SQLite) and the daemon reading `daemon_config` (TOML) besides its
    /// defaults.
    pub async fn start_on(
        redis: RedisServer,
        database_url: Option<&str>,
        daemon_config: &str,
    ) -> Result<Stack> {
        Self::start_with_cloud_env(redis, database_url, daemon_config, &[]).await
    }

    /// Like [`Stack::start_on`], the cloud started with `cloud_env` (its
    /// settings) besides the harness's.
    pub async fn start_with_cloud_env(
        redis: RedisServer,
        database_url: Option<&str>,
        daemon_config: &str,
        cloud_env: &[(&str, &str)],
    ) -> Result<Stack> {
        Self::start_with_fake(
            redis,
            database_url,
            daemon_config,
            cloud_env,
            FakeTelegram::start().await,
        )
        .await
    }

    /// Like [`Stack::start_with_cloud_env`], against a fake Bot API the test
    /// prepared (its forums, the bot's topic mode) before the cloud starts.
    pub async fn start_with_fake(
        redis: RedisServer,
        database_url: Option<&str>,
        daemon_config: &str,
        cloud_env: &[(&str, &str)],
        tg: FakeTelegram,
    ) -> Result<Stack> {
        let cloud = Cloud::start_env(
            &redis.url(),
            &tg.api_base(),
            &tg.token(),
            database_url,
            cloud_env,
        )
        .await?;
        let home = Home::new(&cloud.url)?;
        home.add_config(daemon_config)?;
        let daemon = Daemon::start(&home).await?;
        Ok(Stack {
            daemon,
            home,
            cloud,
            tg,
            redis,
        })
    }

    /// On a fresh Redis with AOF, the cloud on SQLite, the daemon on its
    /// defaults.
    pub async fn start() -> Result<Stack> {
        Self::start_on(RedisServer::start()?, None, "").await
    }

    /// `remoteagentctl pair` of the project `name` run by the fixture
    /// `runner` (`--command`), confirmed by `user` sending `/pair CODE`;
    /// the test fails unless `pair` exits 0 within `wait` (it returns once
    /// the agent is online). Returns the project's folder.
    pub async fn pair_project(
        &self,
        user: i64,
        name: &str,
        runner: &str,
        wait: Duration,
    ) -> PathBuf {
        let project = self.home.project(name).expect("a project folder");
        let runner = fixture(runner);
        let runner = runner.to_str().expect("a UTF-8 fixture path");
        let (mut ctl, code) = self
            .home
            .start_pairing(&format!("pair-{name}"), &project, &["--command", runner])
            .await;
        self.cloud.say(user, &format!("/pair {code}")).await;
        let exit = ctl.wait(wait).await.expect("pair runs");
        assert_eq!(exit, Some(0), "pair failed:\n{}", ctl.output());
        project
    }

    /// Every message text in `chat` as the user sees it now.
    pub fn texts(&self, chat: i64) -> Vec<String> {
        self.tg.messages(chat).into_iter().map(|m| m.text).collect()
    }

    /// The last lines the cloud and the daemon logged, for a failing test.
    pub fn logs(&self) -> String {
        format!(
            "cloud:\n{}\ndaemon:\n{}",
            self.cloud.proc.tail(40),
            self.daemon.proc.tail(40)
        )
    }
}

/// For a test's `World` that holds its [`Stack`] in a field `stack`: derefs
/// to it, so the test reads `w.cloud` and `w.redis.restart()` directly.
#[macro_export]
macro_rules! derefs_to_stack {
    ($world:ty) => {
        impl std::ops::Deref for $world {
            type Target = $crate::Stack;
            fn deref(&self) -> &$crate::Stack {
                &self.stack
            }
        }

        impl std::ops::DerefMut for $world {
            fn deref_mut(&mut self) -> &mut $crate::Stack {
                &mut self.stack
            }
        }
    };
}
