//! With a service manager (a systemd user session, launchd): the cloud and
//! the daemon become login services. Each unit is (re)written only when
//! its file differs, started when it is not running, and restarted when
//! its config changed, so a second run of setup leaves a running service
//! alone.

use anyhow::Result;

use crate::service::{self, Action, Env, Platform, Unit};

/// What setup wants of one unit.
pub struct Want {
    pub unit: Unit,
    /// Its config (or token) file changed in this run.
    pub config_changed: bool,
}

/// The actions that bring `want` about, in order, with what each is for.
pub fn actions(platform: Platform, env: &Env, want: &Want) -> Vec<Action> {
    let status = service::unit_status(platform, want.unit, env);
    let install = service::plan(platform, Action::Install, want.unit, env);
    let file_right = install
        .write
        .iter()
        .all(|(path, content)| std::fs::read_to_string(path).is_ok_and(|c| &c == content));
    if !status.installed || !file_right {
        // `install` enables and (re)starts; a changed unit file needs it.
        let mut actions = vec![Action::Install];
        if status.is_active() {
            actions.push(Action::Restart);
        }
        return actions;
    }
    if !status.is_active() {
        return vec![Action::Start];
    }
    if want.config_changed {
        return vec![Action::Restart];
    }
    vec![]
}

/// Carries out [`actions`] for `want`; says what was done.
pub fn ensure(platform: Platform, env: &Env, want: &Want) -> Result<String> {
    let actions = actions(platform, env, want);
    if actions.is_empty() {
        return Ok(format!("{} is active (unchanged)", want.unit.name()));
    }
    let mut done = Vec::new();
    for action in actions {
        let plan = service::plan(platform, action, want.unit, env);
        service::execute(&plan, platform, action)?;
        done.push(action.done());
    }
    Ok(format!(
        "{} {} via {}",
        want.unit.name(),
        done.join(", then "),
        platform.name()
    ))
}

/// What `--print` shows for the service way.
pub fn describe(platform: Platform, env: &Env) -> String {
    let mut out = String::new();
    for unit in [Unit::Cloud, Unit::Daemon] {
        out.push_str(&service::plan(platform, Action::Install, unit, env).describe());
    }
    out
}
