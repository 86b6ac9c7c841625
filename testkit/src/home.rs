//! A temporary HOME for the real `remoteagentd` and `remoteagentctl`: its
//! own XDG dirs, the daemon started in it on its real control socket, the
//! CLI run against it, and the daemon's log shown when a test fails. One
//! harness for the CLI's tests and the end-to-end suite, so both set up a
//! user's machine the same way.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Hang guard for everything that waits on the binaries.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A binary of this workspace, next to the running test executable
/// (`target/debug/deps/<test>` → `target/debug/<name>`): `cargo build
/// --workspace --bins` (or `cargo test --workspace`) builds it.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir of the test executable");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The `remoteagentctl` binary.
pub fn ctl_bin() -> PathBuf {
    bin("remoteagentctl")
}

/// The `remoteagentd` binary.
pub fn daemon_bin() -> PathBuf {
    bin("remoteagentd")
}

/// A temporary HOME with its own XDG dirs, and a `bin` folder that comes
/// first on the PATH of what runs in it (where a test puts a fake tool).
pub struct Home {
    pub dir: tempfile::TempDir,
    /// The environment of every command run in the home, over the test's.
    pub env: HashMap<String, String>,
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

impl Home {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary home");
        let root = dir.path();
        let mut env = HashMap::new();
        for (var, sub) in [
            ("HOME", ""),
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_STATE_HOME", "state"),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_RUNTIME_DIR", "run"),
        ] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).expect("creating the home's dirs");
            env.insert(var.to_string(), p.to_string_lossy().into_owned());
        }
        std::fs::set_permissions(root.join("run"), std::fs::Permissions::from_mode(0o700))
            .expect("making the runtime dir private");
        let tools = root.join("bin");
        std::fs::create_dir_all(&tools).expect("creating the home's bin");
        let path = format!(
            "{}:{}",
            tools.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        env.insert("PATH".into(), path);
        env.insert("RUST_LOG".into(), "info,remoteagentd=debug".into());
        Home { dir, env }
    }

    /// A home whose daemon config is `text`.
    pub fn with_config(text: &str) -> Self {
        let home = Self::new();
        home.write_config(text);
        home
    }

    /// A home whose config selects the file secret store (for isolation).
    pub fn with_file_store(cloud_url: &str) -> Self {
        Self::with_config(&format!(
            "secret_store = \"file\"\ncloud_url = \"{cloud_url}\"\nabort_grace_secs = 1\n"
        ))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config_file(&self) -> PathBuf {
        self.path().join("config/remoteagent/config.toml")
    }

    pub fn write_config(&self, text: &str) {
        let file = self.config_file();
        std::fs::create_dir_all(file.parent().expect("a config dir"))
            .expect("creating the config dir");
        std::fs::write(file, text).expect("writing the config");
    }

    /// Appends `text` as a line to the daemon's config (read when it starts).
    pub fn add_config(&self, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.config_file())
            .expect("opening the config");
        writeln!(f, "{text}").expect("writing the config");
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("run/remoteagent/remoteagentd.sock")
    }

    pub fn agents_dir(&self) -> PathBuf {
        self.path().join("data/remoteagent/agents")
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.path().join("data/remoteagent/secrets")
    }

    pub fn log_root(&self) -> PathBuf {
        self.path().join("state/remoteagent/logs")
    }

    /// A project folder inside the home.
    pub fn project(&self, name: &str) -> PathBuf {
        let p = self.path().join("projects").join(name);
        std::fs::create_dir_all(&p).expect("creating the project folder");
        p
    }

    /// Installs `source` as the command `name` in the home's `bin`: how a
    /// test puts a fake `claude` where the preset runner looks for it.
    pub fn install_tool(&self, name: &str, source: &Path) {
        let target = self.path().join("bin").join(name);
        std::fs::copy(source, &target).expect("copying the tool");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .expect("making the tool executable");
    }

    /// Puts a tool written as `script` in the home's `bin`.
    pub fn install_script(&self, name: &str, script: &str) {
        let target = self.path().join("bin").join(name);
        std::fs::write(&target, script).expect("writing the tool");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .expect("making the tool executable");
    }

    /// A `systemctl` that fails as it does without a user session (this
    /// sandbox's case).
    pub fn without_user_session(&self) {
        self.install_script(
            "systemctl",
            "#!/bin/sh\necho 'Failed to connect to bus: No such file or directory' >&2\nexit 1\n",
        );
    }

    /// A stand-in `systemctl` with a user session, for what no sandbox here
    /// has: `show-environment` answers; a unit is loaded once `state/UNIT`
    /// exists and active while it says so; `start`, `restart` and `enable
    /// --now` make it active, `stop` and `disable --now` inactive;
    /// `daemon-reload` succeeds. Every call is appended to `calls`. Returns
    /// its folder.
    pub fn with_user_session(&self) -> PathBuf {
        let dir = self.path().join("fake-systemd");
        std::fs::create_dir_all(dir.join("state")).expect("creating the fake systemd");
        let script = format!(
            r#"#!/bin/sh
dir='{dir}'
echo "$*" >> "$dir/calls"
[ "$1" = --user ] || exit 2
unit=""
for a in "$@"; do unit="$a"; done
case "$2" in
  show-environment) echo "HOME=$HOME" ;;
  daemon-reload) ;;
  show)
    if [ -f "$dir/state/$unit" ]; then
      echo LoadState=loaded
      echo "ActiveState=$(cat "$dir/state/$unit")"
      echo "FragmentPath=$dir/$unit"
    else
      echo LoadState=not-found
      echo ActiveState=inactive
      echo FragmentPath=
    fi ;;
  start|restart) echo active > "$dir/state/$unit" ;;
  stop) echo inactive > "$dir/state/$unit" ;;
  enable) [ "$3" = --now ] && echo active > "$dir/state/$unit" ;;
  disable) [ "$3" = --now ] && echo inactive > "$dir/state/$unit" ;;
  *) exit 3 ;;
esac
"#,
            dir = dir.display()
        );
        self.install_script("systemctl", &script);
        dir
    }

    /// Gives `cmd` the home's environment and working directory, and takes
    /// away what would point it at the user's real daemon or journal.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.envs(&self.env)
            .env_remove("REMOTEAGENT_SOCKET")
            .env_remove("REMOTEAGENT_CLOUD_URL")
            .env_remove("JOURNAL_STREAM")
            .current_dir(self.path());
    }

    /// `bin` to be run in the home, not started yet.
    pub fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin);
        self.apply(&mut cmd);
        cmd
    }

    /// Runs `remoteagentctl ARGS` to completion.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.command(&ctl_bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running remoteagentctl")
    }

    /// Starts `remoteagentctl ARGS` with piped output.
    pub fn spawn_ctl(&self, args: &[&str]) -> Child {
        self.command(&ctl_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting remoteagentctl")
    }

    /// `remoteagentctl --json list`, parsed (None while it does not answer).
    pub fn list(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.ctl(&["--json", "list"]).stdout).ok()
    }

    /// A `remoteagentd` command in this home, not started yet.
    pub fn daemon_command(&self) -> Command {
        self.command(&daemon_bin())
    }

    /// Whether a daemon answers `status` in this home.
    pub fn daemon_answers(&self) -> bool {
        self.socket().exists() && self.ctl(&["status"]).status.success()
    }

    /// Starts the daemon and waits until it answers `status` (blocking:
    /// call it off the async runtime).
    pub fn start_daemon(&self) -> Daemon {
        self.start_daemon_with(|_| {})
    }

    pub fn start_daemon_with(&self, tweak: impl FnOnce(&mut Command)) -> Daemon {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let log = self.path().join(format!("daemon-{stamp}.log"));
        let mut cmd = self.daemon_command();
        tweak(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating the daemon's log"))
            .spawn()
            .expect("starting remoteagentd");
        let mut daemon = Daemon {
            child: Some(child),
            log,
        };
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if self.daemon_answers() {
                return daemon;
            }
            if let Some(status) = daemon.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                panic!(
                    "remoteagentd exited early ({status}):\n{}",
                    daemon.log_text()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "remoteagentd did not come up:\n{}",
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the first agent of `list` is online; `logs` says why
    /// when it never is. The CLI runs on a blocking thread: never through
    /// `tokio::process`, whose SIGCHLD handler would be process-wide and
    /// interrupt other tests' blocking calls that have a timeout (EINTR).
    pub async fn wait_online(self: &Arc<Self>, logs: impl FnOnce() -> String) {
        let online = crate::wait_for(PATIENCE, || {
            let home = self.clone();
            async move {
                let list = tokio::task::spawn_blocking(move || home.list())
                    .await
                    .ok()??;
                (list[0]["online"] == true).then_some(())
            }
        })
        .await;
        assert!(online.is_some(), "the agent never came online:\n{}", logs());
    }
}

/// A running `remoteagentd`; killed on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("a running daemon").id() as i32
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("signalling the daemon");
    }

    /// Waits for the daemon to exit and returns its status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("a running daemon");
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the daemon") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("remoteagentd did not exit:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait()
    }

    /// SIGKILL, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() && self.log.is_file() {
            eprintln!(
                "---- remoteagentd (last lines) ----\n{}",
                tail(&self.log_text(), 60)
            );
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
