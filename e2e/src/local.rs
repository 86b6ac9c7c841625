//! The user's machine: a temporary HOME (`remoteagent_testkit::home`, the
//! one harness the CLI's tests use too), the real `remoteagentd` in it as a
//! [`Proc`], and `remoteagentctl` run against it. The end-to-end suite and
//! the benchmarks run them with nothing of the test's environment but its
//! PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Result, bail};

use remoteagent_testkit::home::PATIENCE;

use crate::{Proc, bin};

/// A temporary home directory with its own XDG dirs and daemon config.
pub struct Home {
    inner: remoteagent_testkit::home::Home,
}

/// The shared harness's paths and checks (`path`, `socket`, `list`, …).
impl std::ops::Deref for Home {
    type Target = remoteagent_testkit::home::Home;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl Home {
    pub fn new(cloud_url: &str) -> Result<Home> {
        // The file store keeps tests independent of a Secret Service; the
        // keyring path has its own tests in the daemon's suite.
        let inner = remoteagent_testkit::home::Home::with_config(&format!(
            "cloud_url = \"{cloud_url}\"\nsecret_store = \"file\"\nabort_grace_secs = 2\n"
        ));
        Ok(Home { inner })
    }

    /// A project folder inside the home.
    pub fn project(&self, name: &str) -> Result<PathBuf> {
        Ok(self.inner.project(name))
    }

    /// Installs `source` as the command `name` in the home's `bin`, which
    /// comes first on the daemon's PATH.
    pub fn install_tool(&self, name: &str, source: &Path) -> Result<()> {
        self.inner.install_tool(name, source);
        Ok(())
    }

    /// Appends `text` to the daemon's config file (read when it starts).
    pub fn add_config(&self, text: &str) -> Result<()> {
        self.inner.add_config(text);
        Ok(())
    }

    /// Sets `key` in the environment of the daemon and the CLI started
    /// from now on (`SSL_CERT_FILE` for a Redis with a private CA).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.inner.env.insert(key.to_string(), value.to_string());
    }

    /// Environment shared by the daemon and the CLI: the home's, and of the
    /// test's only its PATH (behind the home's `bin`).
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env_clear();
        self.inner.apply(cmd);
    }

    /// Runs `remoteagentctl ARGS` to completion.
    pub fn ctl(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new(bin("remoteagentctl"));
        self.apply(&mut cmd);
        Ok(cmd.args(args).output()?)
    }

    /// `remoteagentctl pair PROJECT OPTIONS…` started in the background
    /// (its output in `LOG_NAME.log`), and the pairing code it printed.
    pub async fn start_pairing(
        &self,
        log_name: &str,
        project: &Path,
        options: &[&str],
    ) -> (Proc, String) {
        let mut args = vec!["pair", project.to_str().unwrap()];
        args.extend_from_slice(options);
        let ctl = self.ctl_spawn(log_name, &args).unwrap();
        let code = remoteagent_testkit::wait_for(PATIENCE, || {
            let code = crate::pairing_code(&ctl.output());
            async move { code }
        })
        .await
        .unwrap_or_else(|| panic!("no pairing code printed:\n{}", ctl.output()));
        (ctl, code)
    }

    /// Starts `remoteagentctl ARGS` in the background (for `pair`).
    pub fn ctl_spawn(&self, name: &str, args: &[&str]) -> Result<Proc> {
        let mut cmd = Command::new(bin("remoteagentctl"));
        self.apply(&mut cmd);
        cmd.args(args);
        Proc::spawn(name, cmd, self.path())
    }
}

pub struct Daemon {
    pub proc: Proc,
}

impl Daemon {
    /// Starts `remoteagentd` in the foreground and waits until it answers.
    pub async fn start(home: &Home) -> Result<Daemon> {
        let mut cmd = Command::new(bin("remoteagentd"));
        home.apply(&mut cmd);
        let proc = Proc::spawn("remoteagentd", cmd, home.path())?;
        let daemon = Daemon { proc };
        for _ in 0..1500 {
            if home.socket().exists() && home.ctl(&["status"]).is_ok_and(|o| o.status.success()) {
                return Ok(daemon);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("remoteagentd did not answer:\n{}", daemon.proc.tail(40))
    }
}
