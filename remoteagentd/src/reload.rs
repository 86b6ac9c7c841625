//! Reloading the config file, on SIGHUP (`systemctl --user reload
//! remoteagentd`) or `remoteagentctl reload` (`Request::Reload`).
//!
//! The file is read and checked whole first: a broken file changes nothing,
//! is logged with its path, line and key, and stays visible in `status` and
//! `doctor` ("config reload failed at 07:12 UTC: …") until a reload
//! succeeds. A good file is put in force at once: `cloud_url` for the next
//! pairing and doctor, the abort grace, prompt limit, approval policies,
//! output budget, log limits and attachment limits for each agent's next
//! session. The keys in
//! [`crate::config::RESTART_KEYS`] (the secret store) keep their running value and are
//! reported as taking effect after a restart.
//!
//! The steps are `Supervisor::reload_config`; here are the parts that
//! need no supervisor (so this module imports none).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::agent::AgentSettings;
use crate::config::Config;

/// What the last reload left for `status` and `doctor` to say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadState {
    /// "config reload failed at HH:MM UTC: …" until a reload succeeds.
    pub failure: Option<String>,
    /// Keys changed in the file that the running daemon cannot apply.
    pub restart_needed: Vec<String>,
}

/// A successful reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Keys whose new value is now in force.
    pub changed: Vec<String>,
    /// Keys whose new value waits for a restart.
    pub restart_needed: Vec<String>,
}

/// The keys (as in [`crate::config::KEYS`], `[[project]]` as a whole) whose
/// values differ.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 13] = [
        ("cloud_url", old.cloud_url != new.cloud_url),
        ("secret_store", old.secret_store != new.secret_store),
        (
            "abort_grace_secs",
            old.abort_grace_secs != new.abort_grace_secs,
        ),
        (
            "max_prompt_bytes",
            old.max_prompt_bytes != new.max_prompt_bytes,
        ),
        (
            "approval.policy",
            old.approval.policy != new.approval.policy,
        ),
        (
            "approval.allow_tools",
            old.approval.allow_tools != new.approval.allow_tools,
        ),
        (
            "approval.timeout_secs",
            old.approval.timeout_secs != new.approval.timeout_secs,
        ),
        (
            "output.stream_budget_mb",
            old.output.stream_budget_mb != new.output.stream_budget_mb,
        ),
        (
            "logs.max_log_mb",
            old.logs.max_log_mb != new.logs.max_log_mb,
        ),
        (
            "logs.max_total_mb",
            old.logs.max_total_mb != new.logs.max_total_mb,
        ),
        (
            "attachments.max_files",
            old.attachments.max_files != new.attachments.max_files,
        ),
        (
            "attachments.max_total_mb",
            old.attachments.max_total_mb != new.attachments.max_total_mb,
        ),
        ("project", old.projects != new.projects),
    ];
    checks
        .into_iter()
        .filter_map(|(key, differs)| differs.then_some(key))
        .collect()
}

/// The agent settings `config` gives, keeping what the config does not set
/// (the log root, the hook's target, the approval board, the replay
/// record) from `base`.
pub fn agent_settings(base: &AgentSettings, config: &Config) -> AgentSettings {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(std::path::PathBuf::from);
    let mut settings = base.clone();
    settings.abort_grace = config.abort_grace();
    settings.max_prompt_bytes = config.max_prompt_bytes;
    settings.approval.policies = config.approval_policies(home.as_deref());
    settings.stream_budget = config.output.stream_budget_bytes();
    settings.log_limits = config.logs.limits();
    settings.outbox_hint = config.outbox.hint;
    settings.inbox.limits = config.attachments.limits();
    settings.worktrees.projects = config.worktree_projects(home.as_deref());
    settings
}

/// "07:12 UTC": when, for a line people read. UTC because the daemon has no
/// time-zone database; the log line has the full timestamp.
pub fn hhmm_utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{:02}:{:02} UTC", secs / 3600 % 24, secs / 60 % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn changed_keys_name_what_differs() {
        let p = Path::new("c.toml");
        let old = Config::default();
        let new = Config::parse(
            p,
            "cloud_url = \"https://new.example\"\nsecret_store = \"file\"\n[logs]\nmax_log_mb = 5\n",
        )
        .unwrap();
        assert_eq!(
            changed_keys(&old, &new),
            vec!["cloud_url", "secret_store", "logs.max_log_mb"]
        );
        assert!(changed_keys(&old, &old).is_empty());
    }

    #[test]
    fn time_is_hours_and_minutes() {
        let t = UNIX_EPOCH + Duration::from_secs(86400 * 3 + 7 * 3600 + 12 * 60 + 59);
        assert_eq!(hhmm_utc(t), "07:12 UTC");
    }
}
