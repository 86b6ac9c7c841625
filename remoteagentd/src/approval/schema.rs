//! The `[approval]` table of the config file and a project's `approval =
//! { … }`, as they are written: the policy kinds, the defaults and the
//! limits. A leaf: the config file (`crate::config`) embeds these tables
//! and [`super::policy`] resolves them, without either importing the other.

use serde::Deserialize;

/// What happens to a tool use no `allow_tools` entry matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Ask the phone.
    #[default]
    Ask,
    /// Allow at once.
    Allow,
    /// Deny at once (and tell the user).
    Deny,
}

/// The tools listed by default as harmless: they only read.
pub const DEFAULT_ALLOW_TOOLS: &[&str] =
    &["Read", "Glob", "Grep", "LS", "TodoWrite", "NotebookRead"];
/// Seconds the phone has to answer by default.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// Longest approval timeout accepted in the config file (a day).
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

/// `[approval]`: how tool uses are approved unless a project says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalDefaults {
    pub policy: PolicyKind,
    pub allow_tools: Vec<String>,
    pub timeout_secs: u64,
    /// Whether the phone's `/mode` may be looser than this policy (see
    /// `crate::approval::modes`); by default it may only be stricter.
    pub allow_remote_loosen: bool,
    /// Built-in dangerous uses not to ask about (`crate::approval::danger`,
    /// by name: `sudo`, `git-push-force` …); by default all ask.
    pub danger_checks_off: Vec<String>,
    /// More uses that always ask, even under `allow` (`allow_tools` syntax).
    pub always_ask: Vec<String>,
}

impl Default for ApprovalDefaults {
    fn default() -> Self {
        ApprovalDefaults {
            policy: PolicyKind::Ask,
            allow_tools: DEFAULT_ALLOW_TOOLS.iter().map(|t| t.to_string()).collect(),
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            allow_remote_loosen: false,
            danger_checks_off: Vec::new(),
            always_ask: Vec::new(),
        }
    }
}

/// A project's `approval = { … }`: each field present replaces the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalOverride {
    pub policy: Option<PolicyKind>,
    pub allow_tools: Option<Vec<String>>,
    pub timeout_secs: Option<u64>,
    pub allow_remote_loosen: Option<bool>,
}
