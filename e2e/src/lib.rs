//! Harness for the end-to-end suite: starts the real `remoteagent-cloud`,
//! `remoteagentd` and `remoteagentctl` binaries (built by `cargo test
//! --workspace` into the same target dir as this test), each in its own
//! temporary directories, against real Redis and a real database, with the
//! fake Telegram Bot API from `remoteagent_testkit::telegram`.
//!
//! Every child's stdout/stderr goes to a file; [`Proc::tail`] shows it when a
//! test fails, which is most of what one needs to debug a cross-process run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A binary of this workspace, next to the running test executable.
pub use remoteagent_testkit::home::bin;

/// The directory of this crate's fixtures (runner scripts).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The pairing code (`XK9-4TZ`) in what `remoteagentctl pair` printed.
pub fn pairing_code(output: &str) -> Option<String> {
    output
        .split(|c: char| c.is_whitespace() || c == '`' || c == '"' || c == '\'')
        .find(|w| {
            let b = w.as_bytes();
            b.len() == 7
                && b[3] == b'-'
                && b.iter()
                    .enumerate()
                    .all(|(i, c)| i == 3 || c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        .map(str::to_string)
}

/// A child process whose output is kept in files.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Result<Proc> {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        cmd.stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null());
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            name: name.into(),
            child: Some(child),
            log,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process has ended (it is then reaped).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(_))) | None => true,
            Some(Ok(None)) => false,
            Some(Err(_)) => true,
        }
    }

    /// The last `n` lines the process printed.
    pub fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid as i32), sig);
        }
    }

    /// Waits for the process to exit (hang guard `timeout`), returning its code.
    pub async fn wait(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Ok(status.code());
                }
            } else {
                return Ok(None);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{} did not exit within {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then SIGKILL if it lingers; returns the exit code.
    pub async fn stop(&mut self) -> Result<Option<i32>> {
        self.signal(Signal::SIGTERM);
        match self.wait(Duration::from_secs(20)).await {
            Ok(code) => Ok(code),
            Err(_) => {
                self.kill();
                Ok(None)
            }
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            std::thread::sleep(Duration::from_millis(200));
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- {} (last lines) ----\n{}", self.name, self.tail(60));
        }
    }
}

/// A fresh PostgreSQL database on the local server, dropped with the value.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> Result<PgDatabase> {
        let name = format!("ra_e2e_{}", remoteagent_proto::AgentId::generate());
        psql(&format!("CREATE DATABASE {name}"))?;
        let base = remoteagent_testkit::database_url();
        let url = match base.rfind('/') {
            Some(i) => format!("{}/{name}", &base[..i]),
            None => bail!("unexpected database url {base}"),
        };
        Ok(PgDatabase { name, url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn psql(sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .arg(remoteagent_testkit::database_url())
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub mod cloud;
pub mod doctor;
pub mod local;
pub mod stack;

pub use cloud::Cloud;
pub use local::{Daemon, Home};
pub use stack::Stack;
