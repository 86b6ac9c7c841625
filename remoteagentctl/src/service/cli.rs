//! `remoteagentctl service install | uninstall | status | start | stop |
//! restart [--cloud] [--print]` and the `remoteagentctl restart` shortcut:
//! which way each goes (the service manager, or remoteagentd directly), what
//! is said about it, and the exit code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use super::direct::{self, Running};
use super::{
    Action, Env, Manager, Platform, Unit, UnitStatus, execute, manager, plan, unit_status,
};
use crate::error::exit;

/// `service status`'s exit codes, in its help.
const STATUS_EXIT_CODES: &str = "Exit codes: 0 every unit shown is active; 1 one is not (inactive, failed, not installed), or there is no service manager to ask, or an error; 2 usage.";

#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub action: ServiceAction,
    /// Act on the self-hosted cloud's unit (remoteagent-cloud.service,
    /// `remoteagentctl setup` installs it) instead of remoteagentd's.
    #[arg(long, global = true)]
    pub cloud: bool,
    /// Show what would be written and run, without doing it.
    #[arg(long, global = true)]
    pub print: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum ServiceAction {
    /// Write the unit (LaunchAgent on macOS), enable it and start it now.
    Install,
    /// Stop and disable the unit, and remove its file.
    Uninstall,
    /// Is the unit installed and active? Without --cloud: remoteagentd's
    /// unit, and the cloud's when it is installed.
    #[command(after_help = STATUS_EXIT_CODES)]
    Status,
    /// Start it: through the service manager when the unit is installed and
    /// the manager answers, else directly (`remoteagentd --daemonize`).
    Start,
    /// Stop it: through the service manager when the unit is installed and
    /// the manager answers, else by SIGTERM to the running daemon (waiting
    /// until its socket is gone).
    Stop,
    /// Stop, then start it (the same two ways as start and stop).
    Restart,
}

impl From<ServiceAction> for Action {
    fn from(a: ServiceAction) -> Action {
        match a {
            ServiceAction::Install => Action::Install,
            ServiceAction::Uninstall => Action::Uninstall,
            ServiceAction::Status => Action::Status,
            ServiceAction::Start => Action::Start,
            ServiceAction::Stop => Action::Stop,
            ServiceAction::Restart => Action::Restart,
        }
    }
}

/// Runs `remoteagentctl service …`: its output, then its exit code.
/// `socket` is the daemon's control socket (`--socket` or the default).
pub fn main(args: &ServiceArgs, json: bool, socket: &Path) -> ExitCode {
    let unit = if args.cloud {
        Unit::Cloud
    } else {
        Unit::Daemon
    };
    let out = Out { json };
    let result = Env::detect().and_then(|env| {
        let ask = Ask {
            action: args.action.into(),
            unit,
            platform: Platform::current(),
            env: &env,
            socket,
            out,
        };
        if args.print {
            ask.print().map(|()| exit::OK)
        } else {
            ask.run()
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if json => {
            // A script asked for JSON: the error is JSON too, on stderr, as
            // for every other command.
            eprintln!(
                "{}",
                serde_json::json!({"error": {"message": format!("{e:#}"), "exit": exit::ERROR}})
            );
            ExitCode::from(exit::ERROR)
        }
        Err(e) => {
            eprintln!("remoteagentctl: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

#[derive(Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    /// One result: its words, or its JSON.
    fn say(self, text: &str, json: serde_json::Value) {
        if self.json {
            println!("{json}");
        } else {
            println!("{text}");
        }
    }
}

struct Ask<'a> {
    action: Action,
    unit: Unit,
    platform: Platform,
    env: &'a Env,
    socket: &'a Path,
    out: Out,
}

/// Which way a start, stop or restart goes.
enum Way {
    Manager,
    /// Directly: why not through the manager, short and in full.
    Direct {
        lead: String,
        detail: Option<String>,
    },
}

impl Ask<'_> {
    fn run(&self) -> Result<u8> {
        match self.action {
            Action::Status => Ok(self.status()),
            Action::Install | Action::Uninstall => self.install_or_uninstall().map(|()| exit::OK),
            Action::Start | Action::Stop | Action::Restart => self.control().map(|()| exit::OK),
        }
    }

    /// `--print`: the plan, and for start/stop/restart which way it goes.
    fn print(&self) -> Result<()> {
        let plan = plan(self.platform, self.action, self.unit, self.env);
        match self.action {
            Action::Install | Action::Uninstall => print!("{}", plan.describe()),
            Action::Status => {
                print!("{}", plan.describe());
                if self.unit == Unit::Daemon {
                    let cloud = plan_for(self, Unit::Cloud);
                    println!("# and, when {} is installed:", Unit::Cloud.name());
                    print!("{}", cloud.describe());
                }
            }
            Action::Start | Action::Stop | Action::Restart => match self.way() {
                Way::Manager => {
                    println!(
                        "# {} is installed and {} answers: {} it through {}",
                        self.unit.name(),
                        self.platform.name(),
                        verb(self.action),
                        self.platform.name()
                    );
                    print!("{}", plan.describe());
                }
                Way::Direct { lead, detail } => {
                    self.refuse_cloud_directly(&lead)?;
                    println!(
                        "# {lead}: remoteagentd would be {} directly",
                        self.action.done()
                    );
                    if let Some(detail) = detail {
                        println!("# {detail}");
                    }
                    self.print_direct()?;
                }
            },
        }
        Ok(())
    }

    fn print_direct(&self) -> Result<()> {
        let now = direct::running(self.socket)?;
        if matches!(self.action, Action::Stop | Action::Restart) {
            match &now {
                Some(r) => println!(
                    "# would send SIGTERM to remoteagentd (pid {}) and wait up to {} s for {} to go away",
                    r.pid,
                    direct::STOP_WAIT.as_secs(),
                    r.socket.display()
                ),
                None => println!(
                    "# remoteagentd is not running (nothing answers on {}): nothing to stop",
                    self.socket.display()
                ),
            }
        }
        match (self.action, &now) {
            (Action::Start, Some(r)) => println!(
                "# remoteagentd is already running (pid {}): nothing to start",
                r.pid
            ),
            (Action::Start | Action::Restart, _) => {
                println!("# would run: {} --daemonize", self.env.daemon.display())
            }
            _ => {}
        }
        Ok(())
    }

    fn install_or_uninstall(&self) -> Result<()> {
        let unit = self.unit;
        if unit == Unit::Cloud && self.action == Action::Install && self.env.cloud.is_none() {
            bail!(
                "remoteagent-cloud was not found next to remoteagentctl or on PATH; install it first"
            );
        }
        if let Manager::Missing(why) = manager(self.platform) {
            bail!(
                "{why}: cannot {} {} as a login service. {}",
                verb(self.action),
                unit.name(),
                match unit {
                    Unit::Daemon =>
                        "Start remoteagentd yourself with `remoteagentctl service start` \
                                     (it runs `remoteagentd --daemonize`) instead.",
                    Unit::Cloud => "Run `remoteagent-cloud --config FILE serve` yourself instead.",
                }
            );
        }
        self.through_manager(unit, capitalized(self.action.done()))
    }

    /// Carries out the action on `unit` through the service manager and
    /// says so ("`done` UNIT via systemd").
    fn through_manager(&self, unit: Unit, done: String) -> Result<()> {
        let plan = plan(self.platform, self.action, unit, self.env);
        execute(&plan, self.platform, self.action)?;
        self.out.say(
            &format!("{done} {} via {}", unit.name(), self.platform.name()),
            serde_json::json!({
                "unit": unit.name(),
                "action": verb(self.action),
                "via": self.platform.name(),
            }),
        );
        Ok(())
    }

    fn way(&self) -> Way {
        let status = unit_status(self.platform, self.unit, self.env);
        match (&status.manager, status.installed) {
            (Manager::Available, true) => Way::Manager,
            (Manager::Available, false) => Way::Direct {
                lead: format!("{} is not installed", self.unit.name()),
                detail: None,
            },
            (Manager::Missing(why), _) => Way::Direct {
                lead: "no service manager".into(),
                detail: Some(why.clone()),
            },
        }
    }

    /// Without a service manager only remoteagentd can be run directly.
    fn refuse_cloud_directly(&self, lead: &str) -> Result<()> {
        if self.unit != Unit::Cloud {
            return Ok(());
        }
        bail!(
            "{lead}: remoteagent-cloud is {} only through a service manager here. \
             Run it yourself with `{} --config {} serve`, or install its unit with \
             `remoteagentctl service install --cloud` (`remoteagentctl setup` does).",
            self.action.done(),
            super::render::program(Unit::Cloud, self.env).display(),
            self.env.cloud_config.display()
        )
    }

    fn control(&self) -> Result<()> {
        let unit = self.unit;
        let (lead, detail) = match self.way() {
            Way::Manager => {
                self.through_manager(unit, self.action.done().to_string())?;
                if unit == Unit::Daemon && self.action == Action::Stop {
                    self.warn_if_still_running();
                }
                return Ok(());
            }
            Way::Direct { lead, detail } => (lead, detail),
        };
        self.refuse_cloud_directly(&lead)?;
        let before = direct::running(self.socket)?;
        let (text, old, new) = match (self.action, &before) {
            (Action::Start, Some(r)) => (
                format!("{lead}: remoteagentd is already running (pid {})", r.pid),
                None,
                Some(r.pid),
            ),
            (Action::Stop, None) => (
                format!(
                    "{lead}: remoteagentd is not running (nothing answers on {}): nothing to stop",
                    self.socket.display()
                ),
                None,
                None,
            ),
            (Action::Stop, Some(r)) => {
                direct::stop(r)?;
                (
                    format!("{lead}: stopped remoteagentd (pid {}) directly", r.pid),
                    Some(r.pid),
                    None,
                )
            }
            (_, _) => {
                if let Some(r) = &before {
                    direct::stop(r)?;
                }
                let started = direct::start(&self.env.daemon)?;
                let pid = started
                    .pid
                    .map(|p| format!("pid {p}"))
                    .unwrap_or_else(|| "pid unknown".into());
                let text = match (&before, self.action) {
                    (Some(r), _) => format!(
                        "{lead}: restarted remoteagentd (pid {} → {pid}) directly",
                        r.pid
                    ),
                    (None, Action::Restart) => {
                        format!("{lead}: remoteagentd was not running; started it ({pid}) directly")
                    }
                    (None, _) => format!("{lead}: started remoteagentd ({pid}) directly"),
                };
                (
                    format!("{text}\n{}", started.said),
                    before.as_ref().map(|r| r.pid),
                    started.pid,
                )
            }
        };
        let text = match &detail {
            Some(d) => format!("{text}\n{d}"),
            None => text,
        };
        self.out.say(
            &text,
            serde_json::json!({
                "unit": unit.name(),
                "action": verb(self.action),
                "via": "direct",
                "why": lead,
                "detail": detail,
                "old_pid": old,
                "pid": new,
            }),
        );
        Ok(())
    }

    /// A daemon started outside the service manager is not stopped by it.
    fn warn_if_still_running(&self) {
        if let Ok(Some(Running { pid, socket })) = direct::running(self.socket) {
            eprintln!(
                "remoteagentctl: remoteagentd (pid {pid}) still answers on {}: it was started \
                 outside {}; stop it with `kill {pid}`",
                socket.display(),
                self.platform.name()
            );
        }
    }

    /// `service status`: 0 when every unit shown is active, else 1.
    fn status(&self) -> u8 {
        let mut statuses = vec![unit_status(self.platform, self.unit, self.env)];
        if self.unit == Unit::Daemon {
            let cloud = unit_status(self.platform, Unit::Cloud, self.env);
            if cloud.installed {
                statuses.push(cloud);
            }
        }
        let ok = statuses.iter().all(UnitStatus::is_active);
        // Whether remoteagentd itself answers, however it was started.
        let process = match self.unit {
            Unit::Daemon => direct::running(self.socket).ok().flatten(),
            Unit::Cloud => None,
        };
        if self.out.json {
            let mut units: Vec<serde_json::Value> =
                statuses.iter().map(UnitStatus::to_json).collect();
            if let (Unit::Daemon, Some(first)) = (self.unit, units.first_mut()) {
                first["process"] = match &process {
                    Some(r) => serde_json::json!({"pid": r.pid, "socket": r.socket}),
                    None => serde_json::Value::Null,
                };
            }
            println!("{}", serde_json::json!({"ok": ok, "units": units}));
        } else {
            for s in &statuses {
                println!("{}", status_line(s));
            }
            if self.unit == Unit::Daemon {
                match &process {
                    Some(r) if !statuses[0].is_active() => println!(
                        "remoteagentd runs outside the service manager: pid {}, socket {}",
                        r.pid,
                        r.socket.display()
                    ),
                    Some(_) => {}
                    None => println!(
                        "remoteagentd is not running (nothing answers on {}): `remoteagentctl service start`",
                        self.socket.display()
                    ),
                }
            }
        }
        if ok { exit::OK } else { exit::ERROR }
    }
}

fn plan_for(ask: &Ask<'_>, unit: Unit) -> super::Plan {
    plan(ask.platform, ask.action, unit, ask.env)
}

fn status_line(s: &UnitStatus) -> String {
    let name = s.unit.name();
    match (&s.manager, s.installed) {
        (Manager::Missing(why), installed) => format!(
            "{name}: unknown: no service manager to ask. {why}{}",
            if installed {
                format!(". Its unit file is {}", s.path.display())
            } else {
                String::new()
            }
        ),
        (Manager::Available, false) => format!(
            "{name}: not installed (`remoteagentctl service install{}`)",
            s.unit.flag()
        ),
        (Manager::Available, true) => format!(
            "{name}: {} ({}, {})",
            s.active,
            s.platform.name(),
            s.path.display()
        ),
    }
}

/// The action as a verb: "start", "restart", …
fn verb(action: Action) -> &'static str {
    match action {
        Action::Install => "install",
        Action::Uninstall => "uninstall",
        Action::Status => "status",
        Action::Start => "start",
        Action::Stop => "stop",
        Action::Restart => "restart",
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
