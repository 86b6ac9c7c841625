//! Without a service manager (no systemd user session: containers, WSL
//! without systemd, a bare SSH login), setup starts the cloud and the daemon
//! itself, in the background, and says that they will not come back after
//! a reboot. The cloud's pid is kept in `cloud.pid` beside its log, so a
//! later run can restart the cloud it started, and only that one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::service::direct;

/// How long a starting cloud may take to answer `/healthz` (it migrates
/// its database first), and a stopping one to let go of its port.
const CLOUD_WAIT: Duration = Duration::from_secs(30);
/// Between two looks at another process that is starting or stopping.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// The environment a cloud started here keeps: what a login service would
/// have. Anything else (a `DATABASE_URL` or `TELEGRAM_BOT_TOKEN` exported
/// for another project) would override the config file setup wrote.
const CLOUD_ENV: &[&str] = &[
    "HOME",
    "USER",
    "LOGNAME",
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "RUST_LOG",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR",
];

/// The local cloud as setup runs it.
#[derive(Debug, Clone)]
pub struct LocalCloud {
    pub binary: PathBuf,
    pub config: PathBuf,
    pub bind: SocketAddr,
    /// Holds `cloud.pid` and `cloud.log`.
    pub state_dir: PathBuf,
}

impl LocalCloud {
    pub fn pid_file(&self) -> PathBuf {
        self.state_dir.join("cloud.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("cloud.log")
    }
}

/// Who answers on the cloud's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// A RemoteAgent cloud (healthy or not: `status` says).
    Ours {
        version: String,
        status: String,
    },
    /// Something else.
    Other(String),
    Down,
}

pub async fn health(bind: SocketAddr) -> Health {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Health::Other(e.to_string()),
    };
    let response = match client.get(format!("http://{bind}/healthz")).send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Health::Down,
        Err(e) => return Health::Other(e.without_url().to_string()),
    };
    let status = response.status();
    match response.json::<serde_json::Value>().await {
        Ok(v) if v["service"] == "remoteagent-cloud" => Health::Ours {
            version: v["version"].as_str().unwrap_or("?").to_string(),
            status: v["status"].as_str().unwrap_or("?").to_string(),
        },
        _ => Health::Other(format!(
            "HTTP {status} from /healthz, not a RemoteAgent cloud"
        )),
    }
}

/// Makes a cloud run on `cloud.bind`, restarting the one setup started
/// when `restart` (its config changed). Returns what was done, in words.
pub async fn ensure_cloud(cloud: &LocalCloud, restart: bool) -> Result<String> {
    match health(cloud.bind).await {
        Health::Ours { version, .. } if !restart => {
            return Ok(format!(
                "the cloud {version} already runs on http://{} (unchanged)",
                cloud.bind
            ));
        }
        Health::Ours { .. } => stop_cloud(cloud).await?,
        Health::Other(what) => bail!(
            "{} is taken by something else ({what}): free it, or give the cloud another address with `--bind 127.0.0.1:PORT`",
            cloud.bind
        ),
        Health::Down => {}
    }
    let pid = start_cloud(cloud).await?;
    Ok(format!(
        "started the cloud on http://{} (pid {pid}, log {})",
        cloud.bind,
        cloud.log_file().display()
    ))
}

/// The pid in `cloud.pid`, if that process still runs and is a cloud.
fn our_cloud_pid(cloud: &LocalCloud) -> Option<Pid> {
    let text = std::fs::read_to_string(cloud.pid_file()).ok()?;
    let pid = Pid::from_raw(text.trim().parse().ok()?);
    kill(pid, None).ok()?;
    // A recycled pid must not be signalled: on Linux, look at what it runs.
    if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
        let name = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if !String::from_utf8_lossy(name).ends_with("remoteagent-cloud") {
            return None;
        }
    }
    Some(pid)
}

async fn stop_cloud(cloud: &LocalCloud) -> Result<()> {
    let Some(pid) = our_cloud_pid(cloud) else {
        bail!(
            "a RemoteAgent cloud already runs on {} but setup did not start it, so it keeps its old settings: stop it, then run `remoteagentctl setup` again",
            cloud.bind
        );
    };
    kill(pid, Signal::SIGTERM).with_context(|| format!("stopping the cloud (pid {pid})"))?;
    let deadline = Instant::now() + CLOUD_WAIT;
    while kill(pid, None).is_ok() || health(cloud.bind).await != Health::Down {
        if Instant::now() > deadline {
            bail!(
                "the cloud (pid {pid}) did not stop within {} s of SIGTERM; its log: {}",
                CLOUD_WAIT.as_secs(),
                cloud.log_file().display()
            );
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
    Ok(())
}

async fn start_cloud(cloud: &LocalCloud) -> Result<u32> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(&cloud.state_dir)
        .with_context(|| format!("creating {}", cloud.state_dir.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cloud.log_file())
        .with_context(|| format!("opening {}", cloud.log_file().display()))?;
    let mut command = Command::new(&cloud.binary);
    command
        .arg("--config")
        .arg(&cloud.config)
        .arg("serve")
        .env_clear()
        .envs(
            CLOUD_ENV
                .iter()
                .filter_map(|k| Some((k, std::env::var_os(k)?))),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log file")?)
        .stderr(log);
    // Its own process group: a Ctrl-C or a closed terminal after setup
    // must not take the cloud with it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", cloud.binary.display()))?;
    let pid = child.id();
    std::fs::write(cloud.pid_file(), format!("{pid}\n"))
        .with_context(|| format!("writing {}", cloud.pid_file().display()))?;
    let deadline = Instant::now() + CLOUD_WAIT;
    loop {
        if let Some(status) = child.try_wait().context("watching the cloud start")? {
            bail!(
                "the cloud exited as it started ({status}): {}; its log: {}",
                last_line(&cloud.log_file()),
                cloud.log_file().display()
            );
        }
        match health(cloud.bind).await {
            Health::Ours { status, .. } if status == "ok" => return Ok(pid),
            Health::Ours { status, .. } if Instant::now() > deadline => bail!(
                "the cloud started but is {status}: {}; its log: {}",
                last_line(&cloud.log_file()),
                cloud.log_file().display()
            ),
            _ if Instant::now() > deadline => bail!(
                "the cloud did not answer on http://{} within {} s; its log: {}",
                cloud.bind,
                CLOUD_WAIT.as_secs(),
                cloud.log_file().display()
            ),
            _ => tokio::time::sleep(LOOK_EVERY).await,
        }
    }
}

/// The log's last non-empty line, for an error message.
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .map(|l| remoteagent_proto::text::for_terminal_line(&l))
        .unwrap_or_else(|| "it wrote nothing".into())
}

/// Makes the daemon run, restarting it when `restart` (its config changed
/// and no service manager is there to restart it).
pub fn ensure_daemon(daemon: &Path, socket: &Path, restart: bool) -> Result<String> {
    let running = direct::running(socket)?;
    if let Some(running) = &running {
        if !restart {
            return Ok(format!(
                "remoteagentd already runs (pid {}, unchanged)",
                running.pid
            ));
        }
        direct::stop(running)?;
    }
    // `--daemonize` returns once the daemon serves, or fails with the reason.
    let started = direct::start(daemon)?;
    let what = if running.is_some() {
        "restarted"
    } else {
        "started"
    };
    Ok(format!(
        "{what} remoteagentd: {}",
        remoteagent_proto::text::for_terminal(&started.said)
    ))
}
