//! The user's machine: a temporary HOME with XDG dirs, the real
//! `remoteagentd`, and `remoteagentctl` run against it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::{Proc, bin};

/// A temporary home directory with its own XDG dirs and daemon config.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new(cloud_url: &str) -> Result<Home> {
        let dir = tempfile::tempdir()?;
        let home = Home { dir };
        for sub in ["config", "data", "state", "cache", "runtime", "bin"] {
            std::fs::create_dir_all(home.path().join(sub))?;
        }
        std::fs::set_permissions(
            home.path().join("runtime"),
            std::fs::Permissions::from_mode(0o700),
        )?;
        std::fs::create_dir_all(home.path().join("config/remoteagent"))?;
        // The file store keeps tests independent of a Secret Service; the
        // keyring path has its own tests in the daemon's suite.
        std::fs::write(
            home.path().join("config/remoteagent/config.toml"),
            format!("cloud_url = \"{cloud_url}\"\nsecret_store = \"file\"\nabort_grace_secs = 2\n"),
        )?;
        Ok(home)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A project folder inside the home.
    pub fn project(&self, name: &str) -> Result<PathBuf> {
        let p = self.path().join("projects").join(name);
        std::fs::create_dir_all(&p)?;
        Ok(p)
    }

    /// Installs `source` as the command `name` in the home's `bin`, which
    /// comes first on the daemon's PATH: how a test puts a fake `claude`
    /// where the preset runner looks for it.
    pub fn install_tool(&self, name: &str, source: &Path) -> Result<()> {
        let target = self.path().join("bin").join(name);
        std::fs::copy(source, &target)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// Appends `text` to the daemon's config file (read when it starts).
    pub fn add_config(&self, text: &str) -> Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path().join("config/remoteagent/config.toml"))?;
        writeln!(f, "{text}")?;
        Ok(())
    }

    /// Environment shared by the daemon and the CLI.
    pub fn apply(&self, cmd: &mut Command) {
        let path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("XDG_RUNTIME_DIR", self.path().join("runtime"))
            .env("RUST_LOG", "info,remoteagentd=debug");
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("runtime/remoteagent/remoteagentd.sock")
    }

    /// Runs `remoteagentctl ARGS` to completion.
    pub fn ctl(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new(bin("remoteagentctl"));
        self.apply(&mut cmd);
        Ok(cmd.args(args).output()?)
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
    /// Starts `remoteagentd` in the foreground and waits for its socket.
    pub async fn start(home: &Home) -> Result<Daemon> {
        let mut cmd = Command::new(bin("remoteagentd"));
        home.apply(&mut cmd);
        let proc = Proc::spawn("remoteagentd", cmd, home.path())?;
        let daemon = Daemon { proc };
        for _ in 0..1500 {
            if home.socket().exists()
                && home
                    .ctl(&["status"])
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            {
                return Ok(daemon);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("remoteagentd did not answer:\n{}", daemon.proc.tail(40))
    }
}
