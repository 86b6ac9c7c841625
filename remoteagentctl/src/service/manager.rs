//! Can a service manager be asked here, and what does it say of a unit?
//! Both are answered by real calls (`systemctl --user show-environment`,
//! `launchctl print`), never guessed from files or variables: a machine
//! with systemd installed may still have no user session to talk to (a
//! container, an SSH login without lingering).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{Env, Platform, Unit, unit_file, which};

/// Whether the service manager of this platform can be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    Available,
    /// Why not, in words.
    Missing(String),
}

impl Manager {
    pub fn is_available(&self) -> bool {
        matches!(self, Manager::Available)
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Manager::Available => None,
            Manager::Missing(why) => Some(why),
        }
    }
}

/// A unit as the service manager (or, without one, the disk) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStatus {
    pub unit: Unit,
    pub platform: Platform,
    /// The unit file exists (systemd: it is loaded; packages install it
    /// under /usr/lib/systemd/user).
    pub installed: bool,
    /// systemd's ActiveState (`active`, `inactive`, `failed`, `activating`,
    /// …); launchd's state mapped to `active` when running, else
    /// `inactive`; `unknown` without a manager to ask.
    pub active: String,
    pub manager: Manager,
    /// The unit file: the one systemd loaded, else where `install` writes it.
    pub path: PathBuf,
}

impl UnitStatus {
    pub fn is_active(&self) -> bool {
        self.active == "active"
    }

    /// The `--json` form of `service status`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "unit": self.unit.name(),
            "installed": self.installed,
            "active": self.active,
            "manager": {
                "name": self.platform.name(),
                "available": self.manager.is_available(),
                "reason": self.manager.reason(),
            },
            "path": self.path,
        })
    }
}

/// Asks the service manager whether it can be used, with a real call.
pub fn manager(platform: Platform) -> Manager {
    let tool = platform.tool();
    if which(tool).is_none() {
        return Manager::Missing(format!(
            "{tool} was not found: this system has no {}",
            platform.name()
        ));
    }
    let probe = match platform {
        Platform::Systemd => vec!["--user".to_string(), "show-environment".to_string()],
        Platform::Launchd => vec![
            "print".to_string(),
            format!("gui/{}", nix::unistd::getuid().as_raw()),
        ],
    };
    match Command::new(tool)
        .args(&probe)
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => Manager::Missing(format!("running {tool}: {e}")),
        Ok(out) if out.status.success() => Manager::Available,
        Ok(out) => {
            let said = first_line(&out.stderr);
            Manager::Missing(match platform {
                Platform::Systemd => format!(
                    "`systemctl --user` cannot reach a user session: \"{said}\". \
                     It needs a login session (over SSH: `loginctl enable-linger`)"
                ),
                Platform::Launchd => format!(
                    "launchctl cannot reach your login session gui/{}: \"{said}\"",
                    nix::unistd::getuid().as_raw()
                ),
            })
        }
    }
}

/// `unit`'s state: installed or not, active or not, and whether the
/// manager could be asked at all.
pub fn unit_status(platform: Platform, unit: Unit, env: &Env) -> UnitStatus {
    let manager = manager(platform);
    let own = unit_file(platform, unit, env);
    let mut status = UnitStatus {
        unit,
        platform,
        installed: own.exists(),
        active: "unknown".into(),
        manager,
        path: own,
    };
    if !status.manager.is_available() {
        if !status.installed
            && let Some(packaged) = packaged_unit(platform, unit)
        {
            status.installed = true;
            status.path = packaged;
        }
        return status;
    }
    match platform {
        Platform::Systemd => systemd_state(&mut status),
        Platform::Launchd => launchd_state(&mut status, env),
    }
    status
}

/// Where packages put the unit (`/usr/lib/systemd/user`, or an admin's
/// copy in `/etc/systemd/user`): seen without asking systemd.
fn packaged_unit(platform: Platform, unit: Unit) -> Option<PathBuf> {
    if platform != Platform::Systemd {
        return None;
    }
    ["/etc/systemd/user", "/usr/lib/systemd/user"]
        .iter()
        .map(|dir| PathBuf::from(dir).join(unit.name()))
        .find(|p| p.exists())
}

fn systemd_state(status: &mut UnitStatus) {
    let out = Command::new("systemctl")
        .args([
            "--user",
            "show",
            "--property=LoadState,ActiveState,FragmentPath",
            status.unit.name(),
        ])
        .stdin(Stdio::null())
        .output();
    let Ok(out) = out.inspect_err(|e| status.active = format!("unknown ({e})")) else {
        return;
    };
    if !out.status.success() {
        status.active = format!("unknown ({})", first_line(&out.stderr));
        return;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        match line.split_once('=') {
            Some(("LoadState", v)) => status.installed = v == "loaded",
            Some(("ActiveState", v)) => status.active = v.to_string(),
            Some(("FragmentPath", v)) if !v.is_empty() => status.path = PathBuf::from(v),
            _ => {}
        }
    }
}

fn launchd_state(status: &mut UnitStatus, env: &Env) {
    let target = format!("gui/{}/{}", env.uid, status.unit.label());
    let out = Command::new("launchctl")
        .args(["print", &target])
        .stdin(Stdio::null())
        .output();
    status.active = match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let running = text.lines().any(|l| l.trim() == "state = running");
            if running { "active" } else { "inactive" }.into()
        }
        // Not loaded: launchd does not know it, so it does not run.
        _ => "inactive".into(),
    };
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    line.unwrap_or("no message").to_string()
}
