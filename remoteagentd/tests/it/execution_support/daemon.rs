//! The real `remoteagentd` binary in a temporary HOME holding the `Setup`'s
//! agent as pairing would have left it (metadata, and its token in the
//! file secret store), for the tests that need the daemon as a process:
//! restarts, signals, the control socket, Claude's approval hook.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use remoteagent_proto::runner::RunnerSpec;
use remoteagent_proto::{SessionId, names, now_ms, token};
use remoteagent_testkit::wait_for;
use remoteagentd::config::SecretStoreKind;
use remoteagentd::secrets::SecretStore;
use remoteagentd::state::{AgentMeta, StateDir};

use super::{Setup, WAIT};

pub const DAEMON: &str = env!("CARGO_BIN_EXE_remoteagentd");

/// A temporary HOME with one paired agent, and the daemon running in it
/// (or not: it can be stopped, killed and started again).
pub struct DaemonHome {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Folders put first on the daemon's PATH (fake CLIs), hence on its
    /// runners'.
    pub path_prefix: Vec<PathBuf>,
}

impl DaemonHome {
    /// A new HOME whose agent runs `runner` in the `Setup`'s project;
    /// `config` is appended to the config file.
    pub async fn new(s: &Setup, runner: RunnerSpec, config: &str) -> DaemonHome {
        let project = s.project.path().to_path_buf();
        DaemonHome::in_dir(s, runner, config, tempfile::tempdir().unwrap(), &project).await
    }

    /// The same in a given HOME, with a given project folder.
    pub async fn in_dir(
        s: &Setup,
        runner: RunnerSpec,
        config: &str,
        dir: tempfile::TempDir,
        project: &Path,
    ) -> DaemonHome {
        let root = dir.path();
        for sub in ["config/remoteagent", "data", "state", "run"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(
            root.join("config/remoteagent/config.toml"),
            format!(
                "secret_store = \"file\"\ncloud_url = \"http://127.0.0.1:9\"\nabort_grace_secs = 1\n{config}\n"
            ),
        )
        .unwrap();
        let home = DaemonHome {
            dir,
            child: None,
            path_prefix: Vec::new(),
        };
        let meta = AgentMeta {
            id: s.agent.clone(),
            name: "proj".into(),
            path: std::fs::canonicalize(project).unwrap(),
            runner,
            cloud_url: "http://127.0.0.1:9".into(),
            redis_url: s.redis.url(),
            redis_username: String::new(),
            cloud_public_key: s.key.public_key().to_base64(),
            paired_at_ms: now_ms(),
            conversation: None,
        };
        home.state().save(&meta).unwrap();
        // A real agent token, valid for long: no renewal is attempted.
        let (jwt, _) = token::issue(&s.key, &s.agent, 42, 90 * 24 * 3600).unwrap();
        SecretStore::new(
            SecretStoreKind::File,
            home.path().join("data/remoteagent/secrets"),
        )
        .set(&s.agent, &jwt)
        .await
        .unwrap();
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The agents' metadata files.
    pub fn state(&self) -> StateDir {
        StateDir::new(self.path().join("data/remoteagent/agents"))
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("run/remoteagent/remoteagentd.sock")
    }

    /// What the daemon logged, over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("daemon.log")).unwrap_or_default()
    }

    /// The root of the session logs.
    pub fn log_root(&self) -> PathBuf {
        self.path().join("state/remoteagent/logs")
    }

    /// A session's local log ("" when there is none).
    pub fn session_log(&self, s: &Setup, session: &SessionId) -> String {
        let path = remoteagentd::session_log::session_log_path(&self.log_root(), &s.agent, session);
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Starts the daemon and waits until the agent listens on its channel.
    pub async fn start(&mut self, s: &Setup) {
        assert!(self.child.is_none(), "the daemon is running already");
        let root = self.path().to_path_buf();
        let mut path: Vec<String> = self
            .path_prefix
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        path.push(std::env::var("PATH").unwrap_or_default());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("daemon.log"))
            .unwrap();
        let child = Command::new(DAEMON)
            .env_clear()
            .env("PATH", path.join(":"))
            .env("HOME", &root)
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_STATE_HOME", root.join("state"))
            .env("XDG_RUNTIME_DIR", root.join("run"))
            .env("RUST_LOG", "info,remoteagentd=debug")
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let listening =
            wait_for(WAIT, || async { (subscribers(s).await >= 1).then_some(()) }).await;
        assert!(
            listening.is_some(),
            "the daemon's agent never subscribed:\n{}",
            self.log()
        );
    }

    /// SIGTERM, and waits for a clean exit.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let exited = wait_for(WAIT, || {
            let status = child.try_wait().unwrap();
            async move { status }
        })
        .await;
        assert!(
            exited.is_some_and(|s| s.success()),
            "the daemon did not stop cleanly: {exited:?}\n{}",
            self.log()
        );
    }

    /// SIGKILL, as a crash or a power cut would end it: nothing is cleaned
    /// up. Returns once Redis has seen its connection go.
    pub async fn kill(&mut self, s: &Setup) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        child.kill().unwrap();
        child.wait().unwrap();
        let gone = wait_for(WAIT, || async { (subscribers(s).await == 0).then_some(()) }).await;
        assert!(gone.is_some(), "the killed daemon's subscription stayed");
    }
}

impl Drop for DaemonHome {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM first: the daemon then ends its runners too.
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        for _ in 0..200 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Subscribers of the agent's command channel.
pub async fn subscribers(s: &Setup) -> i64 {
    let mut admin = s.admin.clone();
    let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(names::agent_channel(&s.agent))
        .query_async(&mut admin)
        .await
        .unwrap_or_default();
    counts.first().map_or(0, |(_, n)| *n)
}
