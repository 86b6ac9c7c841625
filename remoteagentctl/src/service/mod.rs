//! Login services: remoteagentd — and the self-hosted cloud,
//! `remoteagent-cloud`, that `remoteagentctl setup` installs — as systemd
//! user units on Linux, LaunchAgents on macOS.
//!
//! Every action is first turned into a [`Plan`] (files to write or remove,
//! commands to run); `--print` shows the plan instead of carrying it out, so
//! what would happen can be read (and tested) without touching the system.
//!
//! - [`render`]: the templates filled in for this user;
//! - [`manager`]: whether a service manager can be asked, and a unit's state;
//! - [`direct`]: starting and stopping remoteagentd without one;
//! - [`cli`]: `remoteagentctl service …` and `restart`, their words and exit codes.

pub mod cli;
pub mod direct;
mod manager;
mod render;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub use manager::{Manager, UnitStatus, manager, unit_status};
pub use render::{render_plist, render_unit};

/// A login service remoteagentctl manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// remoteagentd.
    Daemon,
    /// remoteagent-cloud in poll mode, the self-hosted cloud.
    Cloud,
}

impl Unit {
    /// The systemd unit's name.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Daemon => "remoteagentd.service",
            Unit::Cloud => "remoteagent-cloud.service",
        }
    }

    /// The LaunchAgent's label (also its file name, with `.plist`).
    pub fn label(self) -> &'static str {
        match self {
            Unit::Daemon => "dev.remoteagent.remoteagentd",
            Unit::Cloud => "dev.remoteagent.cloud",
        }
    }

    /// The program the unit runs.
    pub fn binary(self) -> &'static str {
        match self {
            Unit::Daemon => "remoteagentd",
            Unit::Cloud => "remoteagent-cloud",
        }
    }

    /// What to add to a `remoteagentctl service` command for this unit.
    pub fn flag(self) -> &'static str {
        match self {
            Unit::Daemon => "",
            Unit::Cloud => " --cloud",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Systemd,
    Launchd,
}

impl Platform {
    pub fn current() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::Launchd
        } else {
            Platform::Systemd
        }
    }

    /// The manager's name, as users know it.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Systemd => "systemd",
            Platform::Launchd => "launchd",
        }
    }

    /// The command that talks to it.
    pub fn tool(self) -> &'static str {
        match self {
            Platform::Systemd => "systemctl",
            Platform::Launchd => "launchctl",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Install,
    Uninstall,
    Status,
    Start,
    Stop,
    Restart,
}

impl Action {
    /// "started", "restarted", …: what is said once it is done.
    pub fn done(self) -> &'static str {
        match self {
            Action::Install => "installed and started",
            Action::Uninstall => "stopped and uninstalled",
            Action::Status => "asked about",
            Action::Start => "started",
            Action::Stop => "stopped",
            Action::Restart => "restarted",
        }
    }
}

/// What an action does, before it is done.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub unit: Unit,
    pub mkdir: Vec<PathBuf>,
    pub write: Vec<(PathBuf, String)>,
    pub remove: Vec<PathBuf>,
    pub run: Vec<Vec<String>>,
}

impl Plan {
    fn new(unit: Unit) -> Plan {
        Plan {
            unit,
            mkdir: vec![],
            write: vec![],
            remove: vec![],
            run: vec![],
        }
    }

    /// The plan as `--print` shows it.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for dir in &self.mkdir {
            out.push_str(&format!("# would create {}\n", dir.display()));
        }
        for (path, content) in &self.write {
            out.push_str(&format!("# would write {}\n{content}", path.display()));
            if !content.ends_with('\n') {
                out.push('\n');
            }
        }
        for cmd in &self.run {
            out.push_str(&format!("# would run: {}\n", cmd.join(" ")));
        }
        for path in &self.remove {
            out.push_str(&format!("# would remove {}\n", path.display()));
        }
        out
    }
}

/// Where things are for the current user.
#[derive(Debug, Clone)]
pub struct Env {
    pub home: PathBuf,
    pub config_home: PathBuf,
    pub uid: u32,
    pub path: String,
    /// The remoteagentd binary the daemon's unit runs.
    pub daemon: PathBuf,
    /// remoteagent-cloud beside remoteagentctl or on PATH, if installed.
    pub cloud: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME/remoteagent/cloud.toml`: the cloud unit's `--config`.
    pub cloud_config: PathBuf,
}

impl Env {
    pub fn detect() -> Result<Env> {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .context("HOME is not set")?;
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".config"));
        let daemon = find_binary("remoteagentd").context(
            "remoteagentd was not found next to remoteagentctl or on PATH; install it first",
        )?;
        Ok(Env {
            // Where `setup` writes it: the same base dirs as the daemon's.
            cloud_config: remoteagent_control::dirs::Dirs::from_env()?
                .config
                .join("cloud.toml"),
            config_home,
            uid: nix::unistd::getuid().as_raw(),
            path: std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            daemon,
            cloud: find_binary("remoteagent-cloud"),
            home,
        })
    }
}

/// `name` next to this binary (how packages and `cargo install` place
/// them), else the first one on PATH. Units need an absolute path.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let beside = dir.join(name);
        if beside.is_file() {
            return Some(beside);
        }
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file() && candidate.is_absolute())
}

/// The user unit `service install` writes.
pub fn unit_path(unit: Unit, env: &Env) -> PathBuf {
    env.config_home.join("systemd/user").join(unit.name())
}

pub fn plist_path(unit: Unit, env: &Env) -> PathBuf {
    env.home
        .join("Library/LaunchAgents")
        .join(format!("{}.plist", unit.label()))
}

/// The file `service install` writes on `platform`.
pub fn unit_file(platform: Platform, unit: Unit, env: &Env) -> PathBuf {
    match platform {
        Platform::Systemd => unit_path(unit, env),
        Platform::Launchd => plist_path(unit, env),
    }
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// What `action` on `unit` means to the service manager of `platform`.
pub fn plan(platform: Platform, action: Action, unit: Unit, env: &Env) -> Plan {
    let mut p = Plan::new(unit);
    let name = unit.name();
    match platform {
        Platform::Systemd => match action {
            Action::Install => {
                p.write.push((unit_path(unit, env), render_unit(unit, env)));
                p.run.push(args(&["systemctl", "--user", "daemon-reload"]));
                p.run
                    .push(args(&["systemctl", "--user", "enable", "--now", name]));
            }
            Action::Uninstall => {
                p.run
                    .push(args(&["systemctl", "--user", "disable", "--now", name]));
                p.remove.push(unit_path(unit, env));
                // After the removal: systemd then forgets the unit.
                p.run.push(args(&["systemctl", "--user", "daemon-reload"]));
            }
            Action::Status => p.run.push(args(&[
                "systemctl",
                "--user",
                "show",
                "--property=LoadState,ActiveState,FragmentPath",
                name,
            ])),
            Action::Start => p.run.push(args(&["systemctl", "--user", "start", name])),
            Action::Stop => p.run.push(args(&["systemctl", "--user", "stop", name])),
            Action::Restart => p.run.push(args(&["systemctl", "--user", "restart", name])),
        },
        Platform::Launchd => {
            let domain = format!("gui/{}", env.uid);
            let target = format!("{domain}/{}", unit.label());
            let plist = plist_path(unit, env);
            match action {
                Action::Install => {
                    p.mkdir.push(render::launchd_log_dir(env));
                    p.write.push((plist.clone(), render_plist(unit, env)));
                    p.run.push(vec![
                        "launchctl".into(),
                        "bootstrap".into(),
                        domain,
                        plist.to_string_lossy().into_owned(),
                    ]);
                }
                Action::Uninstall => {
                    p.run
                        .push(vec!["launchctl".into(), "bootout".into(), target]);
                    p.remove.push(plist);
                }
                Action::Status => p.run.push(vec!["launchctl".into(), "print".into(), target]),
                Action::Start => p
                    .run
                    .push(vec!["launchctl".into(), "kickstart".into(), target]),
                // KeepAlive restarts only after a crash: a SIGTERM'd clean
                // exit stays stopped.
                Action::Stop => p.run.push(vec![
                    "launchctl".into(),
                    "kill".into(),
                    "SIGTERM".into(),
                    target,
                ]),
                Action::Restart => p.run.push(vec![
                    "launchctl".into(),
                    "kickstart".into(),
                    "-k".into(),
                    target,
                ]),
            }
        }
    }
    p
}

/// Carries out `plan` (made by [`plan`] for `platform` and `action`):
/// creates and writes its files, runs its commands, removes its files. A
/// failed command stops it, with the words of what failed and where to look.
pub fn execute(plan: &Plan, platform: Platform, action: Action) -> Result<()> {
    let tool = platform.tool();
    if !plan.run.is_empty() && which(tool).is_none() {
        bail!(
            "{tool} was not found: this system has no {} to run {} as a login service. \
             Start it yourself{} instead.",
            platform.name(),
            plan.unit.binary(),
            match plan.unit {
                Unit::Daemon => " with `remoteagentd --daemonize`",
                Unit::Cloud => " with `remoteagent-cloud --config FILE serve`",
            }
        );
    }
    for dir in &plan.mkdir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (path, content) in &plan.write {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    // Uninstall removes its file after the first command (`disable`,
    // `bootout`) and before systemd's `daemon-reload` — also when disabling
    // failed: a unit that could not be stopped is then not left behind to
    // start at the next login.
    let split = if action == Action::Uninstall {
        plan.run.len().min(1)
    } else {
        plan.run.len()
    };
    let (before, after) = plan.run.split_at(split);
    let mut failed = run_commands(before, action)?;
    if failed.is_none() || action == Action::Uninstall {
        remove_files(&plan.remove)?;
    }
    if failed.is_none() {
        failed = run_commands(after, action)?;
    }
    if let Some(f) = failed {
        let hint = match (platform, action) {
            (Platform::Systemd, Action::Install | Action::Uninstall) => format!(
                "Is a systemd user session running? (`systemctl --user` needs a login session; over SSH try `loginctl enable-linger`.) Its log: `journalctl --user -u {}`",
                plan.unit.name()
            ),
            (Platform::Systemd, _) => {
                format!("Its log: `journalctl --user -u {}`", plan.unit.name())
            }
            (Platform::Launchd, _) => format!(
                "Its log: ~/Library/Logs/remoteagent/{}.log",
                plan.unit.binary()
            ),
        };
        bail!("{f}. {hint}");
    }
    Ok(())
}

/// Runs `commands` in order up to the first that fails: its words.
fn run_commands(commands: &[Vec<String>], action: Action) -> Result<Option<String>> {
    for cmd in commands {
        let status = Command::new(&cmd[0])
            .args(&cmd[1..])
            .status()
            .with_context(|| format!("running {}", cmd.join(" ")))?;
        // `status` reports a stopped unit with a non-zero code: that is an
        // answer, not a failure of this command.
        if !status.success() && action != Action::Status {
            return Ok(Some(format!("`{}` failed ({status})", cmd.join(" "))));
        }
    }
    Ok(None)
}

fn remove_files(paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => println!("removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(tool))
        .find(|p| Path::new(p).is_file())
}

#[cfg(test)]
mod tests;
