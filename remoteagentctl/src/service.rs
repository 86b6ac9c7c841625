//! `remoteagentctl service install | uninstall | status`: run remoteagentd
//! as a login service — a systemd user unit on Linux, a LaunchAgent on macOS.
//!
//! Every action is first turned into a [`Plan`] (files to write or remove,
//! commands to run); `--print` shows the plan instead of carrying it out, so
//! what would happen can be read (and tested) without touching the system.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub const SYSTEMD_UNIT: &str = include_str!("../../systemd/remoteagentd.service");
pub const LAUNCHD_PLIST: &str = include_str!("../../launchd/dev.remoteagent.remoteagentd.plist");
pub const UNIT_NAME: &str = "remoteagentd.service";
pub const LAUNCHD_LABEL: &str = "dev.remoteagent.remoteagentd";

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Install,
    Uninstall,
    Status,
}

/// What an action does, before it is done.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub write: Vec<(PathBuf, String)>,
    pub remove: Vec<PathBuf>,
    pub run: Vec<Vec<String>>,
}

impl Plan {
    /// The plan as `--print` shows it.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (path, content) in &self.write {
            out.push_str(&format!("# would write {}\n{content}", path.display()));
            if !content.ends_with('\n') {
                out.push('\n');
            }
        }
        for path in &self.remove {
            out.push_str(&format!("# would remove {}\n", path.display()));
        }
        for cmd in &self.run {
            out.push_str(&format!("# would run: {}\n", cmd.join(" ")));
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
    /// The remoteagentd binary the service runs.
    pub daemon: PathBuf,
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
        Ok(Env {
            config_home,
            uid: nix_uid(),
            path: std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            daemon: find_daemon()?,
            home,
        })
    }
}

fn nix_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// `remoteagentd` next to this binary (how packages and `cargo install`
/// place them), else the first one on PATH. The unit needs an absolute path.
pub fn find_daemon() -> Result<PathBuf> {
    find_beside_or_on_path("remoteagentd")
        .context("remoteagentd was not found next to remoteagentctl or on PATH; install it first")
}

/// The program `name` next to this binary, else the first one on PATH, as
/// an absolute path.
pub fn find_beside_or_on_path(name: &str) -> Option<PathBuf> {
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

pub fn unit_path(env: &Env) -> PathBuf {
    env.config_home.join("systemd/user").join(UNIT_NAME)
}

pub fn plist_path(env: &Env) -> PathBuf {
    env.home
        .join("Library/LaunchAgents")
        .join(format!("{LAUNCHD_LABEL}.plist"))
}

/// The unit with the daemon's path and the user's PATH filled in, quoted
/// and escaped the way systemd reads them (`%` is a specifier there).
pub fn render_unit(env: &Env) -> String {
    let exec = systemd_quote(&env.daemon.to_string_lossy());
    let path = systemd_escape(&env.path);
    SYSTEMD_UNIT
        .replace("ExecStart=@EXEC@", &format!("ExecStart={exec}"))
        .replace(
            "Environment=PATH=@PATH@",
            &format!("Environment=\"PATH={path}\""),
        )
}

pub fn render_plist(env: &Env) -> String {
    let logs = env.home.join("Library/Logs/remoteagent");
    LAUNCHD_PLIST
        .replace("@EXEC@", &xml_escape(&env.daemon.to_string_lossy()))
        .replace("@PATH@", &xml_escape(&env.path))
        .replace("@LOGDIR@", &xml_escape(&logs.to_string_lossy()))
}

fn systemd_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
}

fn systemd_quote(s: &str) -> String {
    format!("\"{}\"", systemd_escape(s))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

pub fn plan(platform: Platform, action: Action, env: &Env) -> Plan {
    match (platform, action) {
        (Platform::Systemd, Action::Install) => Plan {
            write: vec![(unit_path(env), render_unit(env))],
            remove: vec![],
            run: vec![
                args(&["systemctl", "--user", "daemon-reload"]),
                args(&["systemctl", "--user", "enable", "--now", UNIT_NAME]),
            ],
        },
        (Platform::Systemd, Action::Uninstall) => Plan {
            write: vec![],
            remove: vec![unit_path(env)],
            run: vec![
                args(&["systemctl", "--user", "disable", "--now", UNIT_NAME]),
                args(&["systemctl", "--user", "daemon-reload"]),
            ],
        },
        (Platform::Systemd, Action::Status) => Plan {
            run: vec![args(&[
                "systemctl",
                "--user",
                "status",
                "--no-pager",
                UNIT_NAME,
            ])],
            ..Plan::default()
        },
        (Platform::Launchd, Action::Install) => {
            let domain = format!("gui/{}", env.uid);
            let path = plist_path(env);
            Plan {
                write: vec![(path.clone(), render_plist(env))],
                remove: vec![],
                run: vec![vec![
                    "launchctl".into(),
                    "bootstrap".into(),
                    domain,
                    path.to_string_lossy().into_owned(),
                ]],
            }
        }
        (Platform::Launchd, Action::Uninstall) => Plan {
            write: vec![],
            remove: vec![plist_path(env)],
            run: vec![vec![
                "launchctl".into(),
                "bootout".into(),
                format!("gui/{}/{LAUNCHD_LABEL}", env.uid),
            ]],
        },
        (Platform::Launchd, Action::Status) => Plan {
            run: vec![vec![
                "launchctl".into(),
                "print".into(),
                format!("gui/{}/{LAUNCHD_LABEL}", env.uid),
            ]],
            ..Plan::default()
        },
    }
}

/// Carries out (or with `print`, shows) `action` for this machine.
pub fn run(action: Action, print: bool) -> Result<()> {
    let platform = Platform::current();
    let env = Env::detect()?;
    let plan = plan(platform, action, &env);
    if print {
        print!("{}", plan.describe());
        return Ok(());
    }
    let tool = match platform {
        Platform::Systemd => "systemctl",
        Platform::Launchd => "launchctl",
    };
    if which(tool).is_none() {
        bail!(
            "{tool} was not found: this system has no {} to run remoteagentd as a login service. \
             Start it yourself with `remoteagentd --daemonize` instead.",
            match platform {
                Platform::Systemd => "systemd",
                Platform::Launchd => "launchd",
            }
        );
    }
    for (path, content) in &plan.write {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if platform == Platform::Launchd && action == Action::Install {
        let logs = env.home.join("Library/Logs/remoteagent");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    }
    let mut failed = None;
    for cmd in &plan.run {
        let status = Command::new(&cmd[0])
            .args(&cmd[1..])
            .status()
            .with_context(|| format!("running {}", cmd.join(" ")))?;
        // `status` reports a stopped unit with a non-zero code: that is an
        // answer, not a failure of this command.
        if !status.success() && action != Action::Status {
            failed = Some(format!("`{}` failed ({status})", cmd.join(" ")));
            break;
        }
    }
    for path in &plan.remove {
        match std::fs::remove_file(path) {
            Ok(()) => println!("removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    if let Some(f) = failed {
        bail!(
            "{f}. Is a {} user session running? (`systemctl --user` needs a login session; over SSH try `loginctl enable-linger`.)",
            tool
        );
    }
    if action == Action::Install {
        println!("remoteagentd is installed and started as a login service.");
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
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            home: "/home/ada".into(),
            config_home: "/home/ada/.config".into(),
            uid: 1000,
            path: "/home/ada/.npm/bin:/usr/bin:/opt/50%".into(),
            daemon: "/opt/remote agent/bin/remoteagentd".into(),
        }
    }

    #[test]
    fn unit_is_filled_in_and_escaped() {
        let unit = render_unit(&env());
        assert!(
            unit.contains("ExecStart=\"/opt/remote agent/bin/remoteagentd\"\n"),
            "{unit}"
        );
        assert!(
            unit.contains("Environment=\"PATH=/home/ada/.npm/bin:/usr/bin:/opt/50%%\"\n"),
            "{unit}"
        );
        assert!(!unit.contains('@'), "{unit}");
        assert!(unit.contains("Type=notify"));
    }

    #[test]
    fn plist_is_filled_in_and_escaped() {
        let mut e = env();
        e.path = "/a&b".into();
        let plist = render_plist(&e);
        assert!(plist.contains("<string>/opt/remote agent/bin/remoteagentd</string>"));
        assert!(plist.contains("<string>/a&amp;b</string>"));
        assert!(plist.contains("/home/ada/Library/Logs/remoteagent/remoteagentd.log"));
        assert!(!plist.contains('@'));
    }

    #[test]
    fn plist_parses_with_the_keys_launchd_needs() {
        let parsed = plist::Value::from_reader_xml(render_plist(&env()).as_bytes()).unwrap();
        let dict = parsed.as_dictionary().unwrap();
        assert_eq!(dict["Label"].as_string(), Some(LAUNCHD_LABEL));
        let program = dict["ProgramArguments"].as_array().unwrap();
        assert_eq!(
            program[0].as_string(),
            Some("/opt/remote agent/bin/remoteagentd")
        );
        assert_eq!(dict["RunAtLoad"].as_boolean(), Some(true));
        let keep_alive = dict["KeepAlive"].as_dictionary().unwrap();
        assert_eq!(keep_alive["SuccessfulExit"].as_boolean(), Some(false));
        let env = dict["EnvironmentVariables"].as_dictionary().unwrap();
        assert_eq!(
            env["PATH"].as_string(),
            Some("/home/ada/.npm/bin:/usr/bin:/opt/50%")
        );
        assert!(
            dict["StandardErrorPath"]
                .as_string()
                .unwrap()
                .ends_with("remoteagentd.log")
        );
    }

    #[test]
    fn plans() {
        let p = plan(Platform::Systemd, Action::Install, &env());
        assert_eq!(
            p.write[0].0,
            PathBuf::from("/home/ada/.config/systemd/user/remoteagentd.service")
        );
        assert_eq!(
            p.run[1],
            args(&["systemctl", "--user", "enable", "--now", UNIT_NAME])
        );
        let p = plan(Platform::Launchd, Action::Install, &env());
        assert_eq!(
            p.run[0],
            args(&[
                "launchctl",
                "bootstrap",
                "gui/1000",
                "/home/ada/Library/LaunchAgents/dev.remoteagent.remoteagentd.plist"
            ])
        );
        let p = plan(Platform::Systemd, Action::Uninstall, &env());
        assert_eq!(p.remove.len(), 1);
        assert!(
            p.describe()
                .contains("# would run: systemctl --user disable --now remoteagentd.service")
        );
    }
}
