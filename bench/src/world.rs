//! The processes a benchmark runs against: a private `redis-server`, the real
//! `remoteagent-cloud`, a temporary HOME with the real `remoteagentd`, and
//! pairing through `remoteagentctl pair` plus a `/pair CODE` webhook update.
//!
//! The e2e harness resolves binaries next to a *test* executable
//! (`target/debug/deps/…`); the bench binary lives next to the binaries
//! it drives (`target/release/`), so it starts them itself with [`Proc`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use remoteagent_e2e::{Home, Proc};
use remoteagent_testkit::telegram::{FakeTelegram, updates};

pub use remoteagent_e2e::cloud::WEBHOOK_SECRET;
pub const WAIT: Duration = Duration::from_secs(30);

/// Where the workspace binaries are: `--bin-dir`, else next to this binary.
pub fn bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("REMOTEAGENT_BENCH_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("no directory for the bench executable")
}

pub fn bin(name: &str) -> Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if !path.exists() {
        bail!(
            "{} not built; run scripts/bench (it builds the release binaries)",
            path.display()
        );
    }
    Ok(path)
}

/// A private `redis-server` without persistence: the bench measures the
/// system, not fsync (the testkit server fsyncs every write for its
/// durability tests, which would dominate every throughput figure).
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Result<Redis> {
        let mut r = Redis {
            port: remoteagent_testkit::free_port(),
            dir: tempfile::tempdir()?,
            child: None,
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--maxclients", "10000"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("redis-server on port {} did not start", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL and start again on the same port (all data and ACL users lost).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

pub use remoteagent_e2e::Cloud;

/// The release cloud next to the bench binary, logging at warn: the bench
/// measures the work, not log volume.
pub async fn start_cloud(
    redis_url: &str,
    tg: &FakeTelegram,
    database_url: Option<&str>,
) -> Result<Cloud> {
    Cloud::start_binary(
        &bin("remoteagent-cloud")?,
        "warn",
        redis_url,
        &tg.api_base(),
        &tg.token(),
        database_url,
    )
    .await
}

/// Posts one webhook update; returns the HTTP status.
pub async fn post_update(
    http: &reqwest::Client,
    cloud_url: &str,
    update: &serde_json::Value,
) -> Result<u16> {
    let resp = http
        .post(format!("{cloud_url}/api/telegram"))
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .json(update)
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

static NEXT_UPDATE: AtomicI64 = AtomicI64::new(1);

pub fn update_id() -> i64 {
    NEXT_UPDATE.fetch_add(1, Ordering::Relaxed)
}

pub fn text_update(user: i64, text: &str) -> serde_json::Value {
    updates::text(update_id(), user, user, text)
}

/// The user's machine: a HOME, its daemon, and the CLI against it.
pub struct Machine {
    pub daemon: Proc,
    pub home: Home,
}

fn ctl_cmd(home: &Home) -> Result<Command> {
    let mut cmd = Command::new(bin("remoteagentctl")?);
    home.apply(&mut cmd);
    cmd.env("RUST_LOG", "warn");
    Ok(cmd)
}

impl Machine {
    pub async fn start(cloud_url: &str) -> Result<Machine> {
        let home = Home::new(cloud_url)?;
        Machine::start_in(home).await
    }

    /// Stops the daemon (SIGTERM) and starts it again in the same HOME.
    pub async fn restart(self) -> Result<Machine> {
        let Machine { mut daemon, home } = self;
        daemon.stop().await?;
        drop(daemon);
        Machine::start_in(home).await
    }

    async fn start_in(home: Home) -> Result<Machine> {
        let mut cmd = Command::new(bin("remoteagentd")?);
        home.apply(&mut cmd);
        cmd.env("RUST_LOG", "warn");
        let daemon = Proc::spawn("remoteagentd", cmd, home.path())?;
        let m = Machine { daemon, home };
        for _ in 0..1500 {
            if m.home.socket().exists() && m.ctl(&["status"]).map(|o| o.0).unwrap_or(false) {
                return Ok(m);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("remoteagentd did not answer:\n{}", m.daemon.tail(40))
    }

    /// Runs `remoteagentctl ARGS`: (success, stdout + stderr).
    pub fn ctl(&self, args: &[&str]) -> Result<(bool, String)> {
        let out = ctl_cmd(&self.home)?.args(args).output()?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }

    /// Pairs project `name` running `runner`, confirmed by `user`.
    pub async fn pair(
        &self,
        http: &reqwest::Client,
        cloud_url: &str,
        name: &str,
        runner: &Path,
        user: i64,
    ) -> Result<()> {
        let project = self.home.project(name)?;
        let mut cmd = ctl_cmd(&self.home)?;
        cmd.args(["pair"])
            .arg(&project)
            .arg("--command")
            .arg(runner);
        let mut ctl = Proc::spawn(&format!("pair-{name}"), cmd, self.home.path())?;
        let deadline = Instant::now() + WAIT;
        let code = loop {
            if let Some(c) = remoteagent_e2e::pairing_code(&ctl.output()) {
                break c;
            }
            if Instant::now() > deadline {
                bail!("no pairing code printed:\n{}", ctl.output());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let status = post_update(
            http,
            cloud_url,
            &text_update(user, &format!("/pair {code}")),
        )
        .await?;
        if status != 200 {
            bail!("/pair answered {status}");
        }
        let exit = ctl.wait(WAIT).await?;
        if exit != Some(0) {
            bail!("pair {name} failed:\n{}", ctl.output());
        }
        Ok(())
    }
}

/// Writes an executable shell script `name` with `body` into `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}
