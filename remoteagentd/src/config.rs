//! The optional config file, `$XDG_CONFIG_HOME/remoteagent/config.toml`.
//!
//! ```toml
//! cloud_url = "https://remoteagent.example"   # env REMOTEAGENT_CLOUD_URL wins
//! secret_store = "keyring"                    # or "file" (opt-in, 0600 files)
//! abort_grace_secs = 5
//! max_prompt_bytes = 32768
//!
//! [approval]                      # tool approval (Claude Code), every project
//! policy = "ask"                  # "ask" the phone | "allow" | "deny"
//! allow_tools = ["Read", "Glob", "Grep", "LS", "TodoWrite", "NotebookRead"]
//! timeout_secs = 300              # unanswered requests are denied after this
//! allow_remote_loosen = false     # may the phone's /mode be looser than policy
//! danger_checks_off = []          # built-in dangerous uses not to ask about:
//!                                 # rm-outside, git-push-force, git-reset-hard,
//!                                 # write-outside, pipe-to-shell, sudo
//! always_ask = ["Bash(terraform destroy*)"]  # more uses asked even under "allow"
//!
//! [output]
//! stream_budget_mb = 64           # output per session sent to the cloud; the
//!                                 # rest stays in the local log only
//!
//! [outbox]                        # files the runner leaves for the chat
//! hint = true                     # tell preset runners where (.remoteagent/outbox/)
//!
//! [logs]                          # the local session logs
//! max_log_mb = 1024               # output kept per session
//! max_total_mb = 2048             # all logs; the oldest go at session start
//!
//! [attachments]                   # files sent from the phone with a prompt
//! max_files = 20                  # per prompt; more refuses the prompt
//! max_total_mb = 100              # per prompt (MB of 1,000,000 bytes)
//!
//! [[project]]                     # per project: absolute path or ~/...
//! path = "~/code/app"
//! approval = { policy = "deny", allow_tools = ["Read", "Bash(cargo test*)"] }
//! worktrees = true                # a prompt while busy runs in a git worktree
//! ```
//!
//! Tools in `allow_tools` run without asking under every policy; an entry is
//! a tool name or `Name(pattern)` with `*` on the tool's main argument (see
//! [`crate::approval::policy`]). A project's values replace the defaults
//! field by field.
//!
//! Unknown keys are an error: a typo such as `secret_stor = "file"` would
//! otherwise silently keep the default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::approval::schema::{ApprovalDefaults, ApprovalOverride};

use crate::approval::ApprovalPolicies;
use crate::approval::policy::{check_table, expand_home};

/// The cloud used when neither the config file nor the environment name one.
pub const DEFAULT_CLOUD_URL: &str = "http://127.0.0.1:8080";
/// The environment variable that overrides `cloud_url`.
pub const CLOUD_URL_ENV: &str = "REMOTEAGENT_CLOUD_URL";

/// Every key the config file accepts, tables as `table.key`; README.md
/// lists them all (checked by a test in the CLI's crate) and a unit test
/// below checks this list against the structs' serde fields.
pub const KEYS: &[&str] = &[
    "cloud_url",
    "secret_store",
    "abort_grace_secs",
    "max_prompt_bytes",
    "approval.policy",
    "approval.allow_tools",
    "approval.timeout_secs",
    "approval.allow_remote_loosen",
    "approval.danger_checks_off",
    "approval.always_ask",
    "output.stream_budget_mb",
    "outbox.hint",
    "logs.max_log_mb",
    "logs.max_total_mb",
    "attachments.max_files",
    "attachments.max_total_mb",
    "project.path",
    "project.approval",
    "project.worktrees",
];

/// The keys a running daemon cannot change: the secret store holds the
/// tokens its agents were started with. A reload that changes one says it
/// "takes effect after a restart"; every other key applies at once (to
/// the next session, the next pairing, the next doctor).
pub const RESTART_KEYS: &[&str] = &["secret_store"];

/// The environment variables the daemon reads (README.md and the man page
/// list them), with what each does.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        CLOUD_URL_ENV,
        "the cloud's URL; wins over cloud_url in the config file",
    ),
    (
        "RUST_LOG",
        "log filter, e.g. info or remoteagentd=debug (default info)",
    ),
    (
        "HOME",
        "the home directory; ~/ in [[project]] paths and the XDG defaults",
    ),
    ("XDG_CONFIG_HOME", "where remoteagent/config.toml is read"),
    (
        "XDG_DATA_HOME",
        "where agents' metadata and the file secret store live",
    ),
    (
        "XDG_STATE_HOME",
        "where the runs' logs, the inbox of files from the phone, the replay record and the --daemonize log live",
    ),
    (
        "XDG_RUNTIME_DIR",
        "where the control socket and the --daemonize pid file live",
    ),
    (
        "TMPDIR",
        "without XDG_RUNTIME_DIR, the socket is in $TMPDIR/remoteagent-UID/",
    ),
    (
        "PATH",
        "where runners' programs (claude, codex, aider, gemini) are found; passed to runners",
    ),
    (
        "DBUS_SESSION_BUS_ADDRESS",
        "the session bus of the Secret Service keyring (Linux)",
    ),
    (
        "JOURNAL_STREAM",
        "set by systemd: logs go to the journal instead of stderr",
    ),
    (
        "NOTIFY_SOCKET",
        "set by systemd (Type=notify): READY=1 and STOPPING=1 are sent there",
    ),
];

/// Where agent JWTs are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretStoreKind {
    /// The OS keyring (Secret Service on Linux, Keychain on macOS).
    #[default]
    Keyring,
    /// 0600 files under `$XDG_DATA_HOME/remoteagent/secrets/`, for machines
    /// without a keyring. Only used when the user asks for it.
    File,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub cloud_url: String,
    pub secret_store: SecretStoreKind,
    pub abort_grace_secs: u64,
    pub max_prompt_bytes: usize,
    /// Tool approval defaults for every project.
    pub approval: ApprovalDefaults,
    /// `[output]`: what goes to the cloud.
    pub output: OutputConfig,
    /// `[outbox]`: files the runner leaves for the chat.
    pub outbox: OutboxConfig,
    /// `[logs]`: the local session logs.
    pub logs: LogsConfig,
    /// `[attachments]`: files sent from the phone with a prompt.
    pub attachments: AttachmentsConfig,
    /// Per-project settings (`[[project]]`).
    #[serde(rename = "project")]
    pub projects: Vec<ProjectConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cloud_url: DEFAULT_CLOUD_URL.into(),
            secret_store: SecretStoreKind::Keyring,
            abort_grace_secs: 5,
            max_prompt_bytes: remoteagent_proto::events::MAX_PROMPT_BYTES,
            approval: ApprovalDefaults::default(),
            output: OutputConfig::default(),
            outbox: OutboxConfig::default(),
            logs: LogsConfig::default(),
            attachments: AttachmentsConfig::default(),
            projects: Vec::new(),
        }
    }
}

const MB: u64 = 1024 * 1024;

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Bytes of output per session written to the Redis stream (hence sent
    /// to Telegram), in MiB; past it the stream says where the rest is.
    pub stream_budget_mb: u64,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            stream_budget_mb: crate::output::DEFAULT_STREAM_BUDGET / MB,
        }
    }
}

impl OutputConfig {
    pub fn stream_budget_bytes(&self) -> u64 {
        self.stream_budget_mb.saturating_mul(MB)
    }
}

/// `[outbox]`: `.remoteagent/outbox/` (see `crate::files::outbox`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Tell preset runners (Claude Code, Codex, Aider, Gemini) in each
    /// prompt that files written to `.remoteagent/outbox/` reach the chat.
    /// Custom commands always get the prompt as typed.
    pub hint: bool,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig { hint: true }
    }
}

/// `[logs]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// Output kept in one session's log, in MiB.
    pub max_log_mb: u64,
    /// All session logs together, in MiB.
    pub max_total_mb: u64,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            max_log_mb: crate::session_log::DEFAULT_MAX_LOG_BYTES / MB,
            max_total_mb: crate::session_log::DEFAULT_MAX_TOTAL_BYTES / MB,
        }
    }
}

impl LogsConfig {
    pub fn limits(&self) -> crate::session_log::LogLimits {
        crate::session_log::LogLimits {
            max_log_bytes: self.max_log_mb.saturating_mul(MB),
            max_total_bytes: self.max_total_mb.saturating_mul(MB),
            keep_per_agent: crate::session_log::KEEP_PER_AGENT,
        }
    }
}

/// `[attachments]`: what one prompt may bring from the phone; a command
/// over either limit is refused whole (the cloud has limits of its own).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentsConfig {
    /// Files per prompt.
    pub max_files: usize,
    /// All files of a prompt together, in MB of 1,000,000 bytes (as
    /// Telegram counts).
    pub max_total_mb: u64,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        AttachmentsConfig {
            max_files: crate::inbox::DEFAULT_MAX_FILES,
            max_total_mb: crate::inbox::DEFAULT_MAX_TOTAL_MB,
        }
    }
}

impl AttachmentsConfig {
    pub fn limits(&self) -> crate::inbox::AttachmentLimits {
        crate::inbox::AttachmentLimits {
            max_files: self.max_files,
            max_total_bytes: self.max_total_mb.saturating_mul(crate::inbox::MB),
        }
    }
}

/// One `[[project]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Absolute, or `~/…` for the home directory.
    pub path: String,
    #[serde(default)]
    pub approval: ApprovalOverride,
    /// A prompt that arrives while the agent is busy runs at once in a
    /// fresh `git worktree` on a branch of its own (`crate::worktrees`).
    #[serde(default)]
    pub worktrees: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads the config file (a missing file means all defaults) and applies
    /// the environment override of `cloud_url`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config = match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        if let Ok(url) = std::env::var(CLOUD_URL_ENV)
            && !url.trim().is_empty()
        {
            config.cloud_url = url.trim().to_string();
        }
        config.cloud_url = config.cloud_url.trim_end_matches('/').to_string();
        Ok(config)
    }

    /// Parses the text of a config file and checks its values.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            // toml's message spans several lines with a source excerpt; the
            // first line names the problem, and where it is (line and key)
            // is what a log line needs.
            message: e.span().map(|s| locate(text, s.start)).unwrap_or_default()
                + e.message().lines().next().unwrap_or("syntax error"),
        })?;
        let invalid = |message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        if !(config.cloud_url.starts_with("http://") || config.cloud_url.starts_with("https://")) {
            return Err(invalid("cloud_url must start with http:// or https://"));
        }
        if config.max_prompt_bytes == 0 {
            return Err(invalid("max_prompt_bytes must be positive"));
        }
        if config.output.stream_budget_mb == 0 {
            return Err(invalid("[output] stream_budget_mb must be positive"));
        }
        if config.logs.max_log_mb == 0 || config.logs.max_total_mb == 0 {
            return Err(invalid(
                "[logs] max_log_mb and max_total_mb must be positive",
            ));
        }
        if config.attachments.max_files == 0 || config.attachments.max_total_mb == 0 {
            return Err(invalid(
                "[attachments] max_files and max_total_mb must be positive",
            ));
        }
        if config.abort_grace_secs > 3600 {
            return Err(invalid("abort_grace_secs must be at most 3600"));
        }
        check_table(
            "approval",
            Some(&config.approval.allow_tools),
            Some(config.approval.timeout_secs),
        )
        .map_err(|m| invalid(&m))?;
        crate::approval::danger::check_config(
            "approval",
            &config.approval.danger_checks_off,
            &config.approval.always_ask,
        )
        .map_err(|m| invalid(&m))?;
        let mut seen: Vec<&str> = Vec::new();
        for project in &config.projects {
            let path = project.path.trim();
            if expand_home(path, Some(Path::new("/"))).is_none() {
                return Err(invalid(&format!(
                    "[[project]] path '{}' must be absolute or start with ~/",
                    project.path
                )));
            }
            if seen.contains(&path) {
                return Err(invalid(&format!(
                    "[[project]] path '{path}' is listed twice"
                )));
            }
            seen.push(path);
            check_table(
                &format!("the approval of project '{path}'"),
                project.approval.allow_tools.as_ref(),
                project.approval.timeout_secs,
            )
            .map_err(|m| invalid(&m))?;
        }
        Ok(config)
    }

    pub fn abort_grace(&self) -> Duration {
        Duration::from_secs(self.abort_grace_secs)
    }

    /// The projects with `worktrees = true`, `~/` expanded with `home`.
    pub fn worktree_projects(&self, home: Option<&Path>) -> Vec<PathBuf> {
        self.projects
            .iter()
            .filter(|p| p.worktrees)
            .filter_map(|p| expand_home(p.path.trim(), home))
            .collect()
    }

    /// The approval policies of every project; `~/` in project paths is
    /// expanded with `home`.
    pub fn approval_policies(&self, home: Option<&Path>) -> ApprovalPolicies {
        let projects = self.projects.iter().map(|p| (p.path.as_str(), &p.approval));
        ApprovalPolicies::new(&self.approval, projects, home)
    }
}

/// "line L, column C, key `table.key`: " for byte `offset` of `text`; the
/// key is the one assigned on that line, under the table header above it.
fn locate(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_no = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let mut table = None;
    for line in text.lines().take(line_no) {
        let line = line.trim();
        if line.starts_with('[') {
            table = Some(
                line.trim_matches(|c| c == '[' || c == ']')
                    .trim()
                    .to_string(),
            );
        }
    }
    let line = text.lines().nth(line_no).unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['))
        .map(|k| match &table {
            Some(t) => format!(", key `{t}.{k}`"),
            None => format!(", key `{k}`"),
        })
        .unwrap_or_default();
    format!("line {}, column {column}{key}: ", line_no + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::schema::PolicyKind;

    #[test]
    fn defaults_and_values() {
        let p = Path::new("c.toml");
        assert_eq!(Config::parse(p, "").unwrap(), Config::default());
        let c = Config::parse(
            p,
            "cloud_url = \"https://x.example\"\nsecret_store = \"file\"\nabort_grace_secs = 2\n",
        )
        .unwrap();
        assert_eq!(c.secret_store, SecretStoreKind::File);
        assert_eq!(c.abort_grace(), Duration::from_secs(2));
        assert_eq!(c.cloud_url, "https://x.example");
        assert_eq!(c.output.stream_budget_bytes(), 64 * 1024 * 1024);
        assert_eq!(c.logs.limits(), crate::session_log::LogLimits::default());
        let c = Config::parse(
            p,
            "[output]\nstream_budget_mb = 1\n[logs]\nmax_log_mb = 10\nmax_total_mb = 20\n",
        )
        .unwrap();
        assert_eq!(c.output.stream_budget_bytes(), 1024 * 1024);
        assert_eq!(c.logs.limits().max_log_bytes, 10 * 1024 * 1024);
        assert_eq!(c.logs.limits().max_total_bytes, 20 * 1024 * 1024);
        assert!(Config::parse(p, "[output]\nstream_budget_mb = 0").is_err());
        assert!(Config::parse(p, "[logs]\nmax_log_mb = 0").is_err());
        assert!(Config::parse(p, "[logs]\nmax_totl_mb = 5").is_err());
        assert_eq!(
            Config::default().attachments.limits(),
            crate::inbox::AttachmentLimits::default()
        );
        let c = Config::parse(p, "[attachments]\nmax_files = 3\nmax_total_mb = 7\n").unwrap();
        assert_eq!(
            c.attachments.limits(),
            crate::inbox::AttachmentLimits {
                max_files: 3,
                max_total_bytes: 7_000_000
            }
        );
        assert!(Config::parse(p, "[attachments]\nmax_files = 0").is_err());
        assert!(Config::parse(p, "[attachments]\nmax_total_mb = 0").is_err());
    }

    #[test]
    fn mistakes_are_clear_errors() {
        let p = Path::new("c.toml");
        let typo = Config::parse(p, "secret_stor = \"file\"").unwrap_err();
        assert!(typo.to_string().contains("secret_stor"), "{typo}");
        let bad = Config::parse(p, "secret_store = \"vault\"").unwrap_err();
        assert!(bad.to_string().contains("c.toml"), "{bad}");
        assert!(Config::parse(p, "cloud_url = \"ftp://x\"").is_err());
        assert!(Config::parse(p, "this is not toml").is_err());
    }

    #[test]
    fn parse_errors_name_line_and_key() {
        let p = Path::new("c.toml");
        let e = Config::parse(
            p,
            "cloud_url = \"https://x\"\n[logs]\nmax_log_mb = \"big\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("c.toml"), "{e}");
        assert!(
            e.contains("line 3, column 14, key `logs.max_log_mb`"),
            "{e}"
        );
        let e = Config::parse(p, "secret_stor = 1").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("secret_stor"), "{e}");
    }

    /// Captures the field names serde expects for a struct, so [`KEYS`]
    /// cannot drift from the structs.
    struct FieldProbe(&'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for &mut FieldProbe {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(serde::de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        let mut probe = FieldProbe(&[]);
        let _ = T::deserialize(&mut probe);
        probe.0
    }

    #[test]
    fn keys_list_every_field() {
        let mut expected: Vec<String> = Vec::new();
        let tables: &[(&str, &[&str])] = &[
            ("approval", fields::<ApprovalDefaults>()),
            ("output", fields::<OutputConfig>()),
            ("outbox", fields::<OutboxConfig>()),
            ("logs", fields::<LogsConfig>()),
            ("attachments", fields::<AttachmentsConfig>()),
            ("project", fields::<ProjectConfig>()),
        ];
        for field in fields::<Config>() {
            match tables.iter().find(|(t, _)| t == field) {
                Some((table, inner)) => {
                    expected.extend(inner.iter().map(|k| format!("{table}.{k}")))
                }
                None => expected.push(field.to_string()),
            }
        }
        assert!(
            expected.len() > 8,
            "the probe found the fields: {expected:?}"
        );
        let mut keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected, "config::KEYS must list every config key");
        for key in RESTART_KEYS {
            assert!(KEYS.contains(key), "{key}");
        }
    }

    #[test]
    fn approval_settings() {
        let p = Path::new("c.toml");
        let d = Config::parse(p, "").unwrap().approval;
        assert_eq!(d.policy, PolicyKind::Ask);
        assert_eq!(d.timeout_secs, 300);
        assert!(d.allow_tools.contains(&"Read".to_string()));
        let c = Config::parse(
            p,
            r#"
[approval]
policy = "deny"
allow_tools = ["Read", "Bash(cargo test*)"]

[[project]]
path = "~/code/app"
approval = { policy = "allow", timeout_secs = 30 }

[[project]]
path = "/srv/site"
"#,
        )
        .unwrap();
        assert_eq!(c.approval.policy, PolicyKind::Deny);
        assert_eq!(
            c.approval.timeout_secs, 300,
            "unset fields keep their default"
        );
        assert_eq!(c.approval.allow_tools, vec!["Read", "Bash(cargo test*)"]);
        assert_eq!(c.projects.len(), 2);
        assert_eq!(
            c.projects[0].approval,
            ApprovalOverride {
                policy: Some(PolicyKind::Allow),
                allow_tools: None,
                timeout_secs: Some(30),
                allow_remote_loosen: None,
            }
        );
        assert_eq!(c.projects[1].approval, ApprovalOverride::default());
    }

    #[test]
    fn approval_mistakes_are_clear_errors() {
        let p = Path::new("c.toml");
        let err = |text: &str| Config::parse(p, text).unwrap_err().to_string();
        let e = err("[approval]\npolicy = \"maybe\"");
        assert!(e.contains("maybe") || e.contains("variant"), "{e}");
        let e = err("[approval]\npolicyy = \"ask\"");
        assert!(e.contains("policyy"), "{e}");
        let e = err("[approval]\nallow_tools = [\"Bash(cargo\"]");
        assert!(e.contains("Bash(cargo") && e.contains("allow_tools"), "{e}");
        let e = err("[approval]\ntimeout_secs = 0");
        assert!(e.contains("timeout_secs"), "{e}");
        let e = err("[[project]]\npath = \"code/app\"");
        assert!(e.contains("code/app") && e.contains("absolute"), "{e}");
        let e = err("[[project]]\npath = \"/a\"\n[[project]]\npath = \"/a\"");
        assert!(e.contains("twice"), "{e}");
        let e = err("[[project]]\npath = \"/a\"\napproval = { policy = \"ask\", colour = 1 }");
        assert!(e.contains("colour"), "{e}");
        let e = err("[[project]]\npath = \"/a\"\napproval = { allow_tools = [\"B sh\"] }");
        assert!(e.contains("project '/a'") && e.contains("B sh"), "{e}");
        let e = err("[[project]]\napproval = {}");
        assert!(e.contains("path"), "{e}");
    }
}
