//! Configuration: environment variables, optionally backed by a TOML file
//! (`--config` / `REMOTEAGENT_CONFIG`) that may set the same keys, either
//! spelled like the variable (`REDIS_URL = "…"`) or in lower case
//! (`redis_url = "…"`). The environment wins over the file; an empty
//! variable counts as unset.
//!
//! Every setting is named once, in [`SETTINGS`] (name, default, help), and
//! read through clap's `env` support (`settings.rs`), so `--help`, the
//! defaults and the names can never disagree; `file.rs` reads the TOML
//! file. Checking is done here, all at once: every missing setting and
//! every invalid value is reported in one error, a key the file should not
//! have is refused, and a bad value from the file says where it is (line
//! and column). Secrets are [`SecretString`]s, so no
//! `Debug` of the configuration can print them.

mod file;
mod settings;
mod stream_mode;
mod stt;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use secrecy::{ExposeSecret, SecretString};
pub use settings::{DefaultValue, SETTINGS, Setting, settings_help};
pub use stream_mode::StreamMode;
pub use stt::{DEFAULT_STT_MODEL, DEFAULT_STT_TIMEOUT_SECS, SttConfig, stt_endpoint};

use file::{File, read_file};
use remoteagent_rediskit as rediskit;
use settings::{Env, Values};

/// How Telegram's updates reach this cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelegramMode {
    /// Telegram posts each update to `{PUBLIC_URL}/api/telegram`.
    Webhook,
    /// The cloud long-polls `getUpdates`: no public URL needed.
    Poll,
}

impl TelegramMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TelegramMode::Webhook => "webhook",
            TelegramMode::Poll => "poll",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", missing_text(.0))]
    Missing(Vec<&'static str>),
    #[error("{key} is invalid: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("reading the config file {0}: {1}")]
    File(PathBuf, String),
    #[error(
        "config file {path}: unknown key `{key}` at line {line}, column {column} (the keys are the settings `remoteagent-cloud --help` lists)"
    )]
    UnknownKey {
        path: PathBuf,
        key: String,
        line: usize,
        column: usize,
    },
    #[error("no data directory: set REMOTEAGENT_DATA_DIR")]
    NoDataDir,
    /// Several of the above, all reported at once.
    #[error("{}", join(.0))]
    Several(Vec<ConfigError>),
}

fn missing_text(keys: &[&'static str]) -> String {
    match keys {
        [one] => format!("{one} is not set (set it in the environment or the config file)"),
        many => format!(
            "{} are not set (set them in the environment or the config file)",
            many.join(", ")
        ),
    }
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Everything the cloud needs to start. Secrets are [`SecretString`]s, so
/// the derived `Debug` shows none of them.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// Where users and daemons reach this cloud, without a trailing slash.
    /// `None` only in poll mode: then there is no `/connect` page.
    pub public_url: Option<String>,
    pub telegram_mode: TelegramMode,
    /// May hold a password (`postgres://user:password@…`).
    pub database_url: SecretString,
    pub data_dir: PathBuf,
    /// May hold the Redis admin password.
    pub redis_url: SecretString,
    /// `REDIS_URL` names a Redis Cluster even when it is one URL
    /// (`REDIS_CLUSTER`; a list of URLs always does).
    pub redis_cluster: bool,
    /// `REDIS_URL` read with `REDIS_CLUSTER`, checked at start-up.
    redis_target: RedisTarget,
    /// The Redis URL daemons are told to use (without credentials).
    pub public_redis_url: String,
    /// False for Redis servers without ACL commands: agents then use the
    /// default user and no per-agent confinement exists.
    pub redis_acl: bool,
    pub bot_token: SecretString,
    /// The webhook's secret token; `None` in poll mode, where the webhook
    /// route takes nothing.
    pub webhook_secret: Option<SecretString>,
    /// `https://api.telegram.org`, a fake's URL in tests, or `console`.
    pub telegram_api_base: String,
    /// Seconds one `getUpdates` long poll waits (poll mode).
    pub poll_timeout_secs: u64,
    /// Seconds the poll lease lasts without renewal (poll mode).
    pub poll_lease_secs: u64,
    /// base64url seed of the signing key; `None` reads or generates
    /// `{data_dir}/signing.key`.
    pub signing_key: Option<SecretString>,
    pub free_plan_agents: u32,
    pub trial_days: u32,
    /// Names this process in forwarder locks and the poll lease.
    pub replica_id: String,
    /// Pages of output shown live per session; past them the whole output
    /// is attached as a file at the end (`FORWARDER_MAX_PAGES`, ≥ 1).
    pub forwarder_max_pages: usize,
    /// Seconds a session's stream may stay silent while its agent is offline
    /// (no presence key) before the forwarder ends it with an error
    /// (`FORWARDER_ORPHAN_SECS`, ≥ 1).
    pub forwarder_orphan_secs: u64,
    /// Seconds `/get` waits for the daemon's first answer before saying it
    /// did not answer (an old daemon skips the command) (`GET_ANSWER_SECS`,
    /// ≥ 1).
    pub get_answer_secs: u64,
    /// Reverse proxies whose `X-Forwarded-For` is believed
    /// (`TRUSTED_PROXIES`, comma-separated CIDRs or addresses; none by
    /// default: the TCP peer is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
    /// Every group chat counts as opted in for its members' agents
    /// (`ALLOW_GROUP_PROMPTS`; default false: `/allowgroup` per group).
    pub allow_group_prompts: bool,
    /// The speech-to-text server that transcribes voice notes; `None`
    /// without `STT_URL` (voice notes are then refused with a hint).
    pub stt: Option<SttConfig>,
    /// Photos and documents one prompt may carry (`ATTACHMENTS_MAX_FILES`).
    pub attachments_max_files: usize,
    /// Bytes of files one prompt may carry (`ATTACHMENTS_MAX_TOTAL_MB`, in
    /// MB of 1,000,000 bytes, as Telegram counts).
    pub attachments_max_total_bytes: u64,
    /// A run's end is also sent as a new message, so that the phone
    /// notifies (`FINAL_NOTIFY`, default true); each user may turn it off
    /// for themselves with `/notify off`.
    pub final_notify: bool,
    /// Prompts that may wait per agent while it is busy with a run
    /// (`QUEUE_MAX_PROMPTS`, default 5).
    pub queue_max_prompts: usize,
    /// How a running session's page is shown in private chats
    /// (`STREAM_MODE`: edits, or drafts persisted by `sendMessage`).
    pub stream_mode: StreamMode,
}

impl Config {
    /// The bot token, for the Bot API client and the login widget check.
    pub fn bot_token(&self) -> &str {
        self.bot_token.expose_secret()
    }

    /// What `REDIS_URL` (with `REDIS_CLUSTER`) names: one server or a
    /// cluster's seed nodes.
    pub fn redis_target(&self) -> rediskit::Target {
        self.redis_target.0.clone()
    }

    /// `REDIS_URL` with its passwords hidden, for logs and errors.
    pub fn redis_url_redacted(&self) -> String {
        rediskit::target::redact(self.redis_url.expose_secret())
    }
}

/// The parsed `REDIS_URL`. Its connection details hold the admin password,
/// so its `Debug` says only what kind of Redis it is.
#[derive(Clone)]
struct RedisTarget(rediskit::Target);

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            rediskit::Target::Standalone(_) => f.write_str("Standalone"),
            rediskit::Target::Cluster(seeds) => write!(f, "Cluster({} seeds)", seeds.len()),
        }
    }
}

/// `REDIS_URL` read with `REDIS_CLUSTER`; the error names the setting and
/// shows the URL with its password hidden.
fn redis_target(values: &Values, url: &str, cluster: bool) -> Result<RedisTarget, ConfigError> {
    rediskit::Target::parse(url, cluster)
        .map(RedisTarget)
        .map_err(|e| values.invalid("REDIS_URL", e.to_string()))
}

// Shared with remoteagentctl, which shows the Redis URL it checks.
pub use remoteagent_proto::url::{redact_url, strip_credentials};

/// Collects every problem, so one start-up reports them all.
#[derive(Default)]
struct Problems {
    missing: Vec<&'static str>,
    errors: Vec<ConfigError>,
}

impl Problems {
    fn required(&mut self, values: &Values, key: &'static str) -> Option<String> {
        let v = values.get(key);
        if v.is_none() {
            self.missing.push(key);
        }
        v
    }

    fn check<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn into_result(mut self) -> Result<(), ConfigError> {
        if !self.missing.is_empty() {
            self.errors.insert(0, ConfigError::Missing(self.missing));
        }
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(self.errors.remove(0)),
            _ => Err(ConfigError::Several(self.errors)),
        }
    }
}

fn parsed<T: std::str::FromStr>(values: &Values, key: &'static str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let raw = values.get(key).unwrap_or_default();
    raw.parse()
        .map_err(|e: T::Err| values.invalid(key, e.to_string()))
}

fn at_least<T: PartialOrd + Copy + std::fmt::Display + std::str::FromStr>(
    values: &Values,
    key: &'static str,
    min: T,
    max: Option<T>,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let v: T = parsed(values, key)?;
    if v < min {
        return Err(values.invalid(key, format!("must be at least {min}")));
    }
    if let Some(max) = max
        && v > max
    {
        return Err(values.invalid(key, format!("must be at most {max}")));
    }
    Ok(v)
}

fn flag(values: &Values, key: &'static str) -> Result<bool, ConfigError> {
    match values.get(key).map(|v| v.to_ascii_lowercase()) {
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => Err(values.invalid(key, format!("expected true or false, got {v:?}"))),
        // Every flag has a default; unreachable, and false is the safe side.
        None => Ok(false),
    }
}

/// A secret from the file `key` names (`TELEGRAM_BOT_TOKEN_FILE`,
/// `STT_API_KEY_FILE`). A file that others can read is refused rather than
/// used: a world-readable copy of a token is a leak the user must hear
/// about.
fn secret_file(values: &Values, key: &'static str, path: &Path) -> Result<String, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| values.invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(values.invalid(
            key,
            format!(
                "{} can be read by other users (mode {mode:o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| values.invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(values.invalid(key, format!("{} is empty", path.display())));
    }
    Ok(token.to_string())
}

impl Config {
    /// Reads the process environment and, if given, the config file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let file_path = file.map(Path::to_path_buf).or_else(|| {
            std::env::var_os("REMOTEAGENT_CONFIG")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        });
        let file = match file_path {
            Some(p) => read_file(&p, settings::canonical_name)?,
            None => File::default(),
        };
        Self::from_values(&Values::resolve(&Env::Process, file)?)
    }

    /// Builds a config from explicit key/value pairs (tests, embedding);
    /// the process environment is not read.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let env = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::from_values(&Values::resolve(&Env::Pairs(env), File::default())?)
    }

    fn from_values(v: &Values) -> Result<Self, ConfigError> {
        let mut p = Problems::default();
        let bot_token = match (
            v.get("TELEGRAM_BOT_TOKEN"),
            v.get("TELEGRAM_BOT_TOKEN_FILE"),
        ) {
            (Some(token), None) => Some(token),
            (None, Some(path)) => {
                p.check(secret_file(v, "TELEGRAM_BOT_TOKEN_FILE", Path::new(&path)))
            }
            (Some(_), Some(_)) => {
                p.errors.push(v.invalid(
                    "TELEGRAM_BOT_TOKEN_FILE",
                    "TELEGRAM_BOT_TOKEN is set too: set only one of them",
                ));
                None
            }
            (None, None) => p.required(v, "TELEGRAM_BOT_TOKEN"),
        };
        let telegram_api_base = v
            .get("TELEGRAM_API_BASE")
            .unwrap_or_else(|| "https://api.telegram.org".into());
        let console = telegram_api_base == "console";
        let public_url = v
            .get("PUBLIC_URL")
            .map(|u| u.trim_end_matches('/').to_string());
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            p.errors
                .push(v.invalid("PUBLIC_URL", "must start with http:// or https://"));
        }
        let telegram_mode = p.check(telegram_mode(v, public_url.is_some(), console));
        let webhook = telegram_mode == Some(TelegramMode::Webhook);
        if webhook && public_url.is_none() {
            p.missing.push("PUBLIC_URL");
        }
        let webhook_secret = if webhook {
            p.required(v, "TELEGRAM_WEBHOOK_SECRET")
                .and_then(|s| p.check(webhook_secret(v, s, console)))
        } else {
            None
        };
        let bind = p.check(parsed::<SocketAddr>(v, "REMOTEAGENT_BIND"));
        let data_dir = p.check(match v.get("REMOTEAGENT_DATA_DIR") {
            Some(d) => Ok(PathBuf::from(d)),
            None => directories::ProjectDirs::from("", "", "remoteagent-cloud")
                .map(|d| d.data_dir().to_path_buf())
                .ok_or(ConfigError::NoDataDir),
        });
        let database_url = match (v.get("DATABASE_URL"), &data_dir) {
            (Some(u), _) => u,
            (None, Some(dir)) => format!("sqlite://{}?mode=rwc", dir.join("cloud.db").display()),
            (None, None) => String::new(),
        };
        let redis_url = v
            .get("REDIS_URL")
            .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        let redis_cluster = p.check(flag(v, "REDIS_CLUSTER"));
        let redis_target = p.check(redis_target(v, &redis_url, redis_cluster.unwrap_or(false)));
        // Daemons must never learn the cloud's own Redis password: when the
        // public URL is derived from REDIS_URL, its credentials are dropped
        // (from every seed of a cluster; a single seed is marked
        // `cluster=true` so that the daemon knows).
        let public_redis_url = v.get("PUBLIC_REDIS_URL").unwrap_or_else(|| {
            rediskit::target::public_form(&redis_url, redis_cluster.unwrap_or(false))
        });
        let replica_id = v.get("REMOTEAGENT_REPLICA_ID").unwrap_or_else(|| {
            let host = hostname_or_unknown();
            format!("{host}-{}", std::process::id())
        });
        let poll_timeout_secs = p.check(at_least(v, "TELEGRAM_POLL_TIMEOUT_SECS", 1u64, Some(50)));
        let poll_lease_secs = p.check(at_least(v, "TELEGRAM_POLL_LEASE_SECS", 3u64, Some(3600)));
        let forwarder_max_pages = p.check(at_least(v, "FORWARDER_MAX_PAGES", 1usize, None));
        let forwarder_orphan_secs = p.check(at_least(v, "FORWARDER_ORPHAN_SECS", 1u64, None));
        let get_answer_secs = p.check(at_least(v, "GET_ANSWER_SECS", 1u64, None));
        let redis_acl = p.check(flag(v, "REDIS_ACL"));
        let allow_group_prompts = p.check(flag(v, "ALLOW_GROUP_PROMPTS"));
        let attachments_max_files = p.check(at_least(v, "ATTACHMENTS_MAX_FILES", 1usize, None));
        let attachments_max_total_mb = p.check(at_least(
            v,
            "ATTACHMENTS_MAX_TOTAL_MB",
            1u64,
            Some(1_000_000),
        ));
        let final_notify = p.check(flag(v, "FINAL_NOTIFY"));
        let queue_max_prompts = p.check(at_least(v, "QUEUE_MAX_PROMPTS", 1usize, Some(100)));
        let free_plan_agents = p.check(parsed(v, "FREE_PLAN_AGENTS"));
        let trial_days = p.check(parsed(v, "TRIAL_DAYS"));
        let trusted_proxies = p.check(trusted_proxies(v));
        let stt = stt::read(v, &mut p);
        let stream_mode = p.check(stream_mode::read(v));
        p.into_result()?;
        // `None` was recorded as a problem above.
        let stream_mode = stream_mode.unwrap_or_default();
        // Every `None` here was recorded as a problem above.
        let (
            Some(bot_token),
            Some(telegram_mode),
            Some(bind),
            Some(data_dir),
            Some(poll_timeout_secs),
            Some(poll_lease_secs),
            Some(forwarder_max_pages),
            Some(forwarder_orphan_secs),
            Some(get_answer_secs),
            Some(redis_acl),
            Some(redis_cluster),
            Some(redis_target),
            Some(allow_group_prompts),
            Some(attachments_max_files),
            Some(attachments_max_total_mb),
            Some(final_notify),
            Some(free_plan_agents),
            Some(trial_days),
            Some(trusted_proxies),
        ) = (
            bot_token,
            telegram_mode,
            bind,
            data_dir,
            poll_timeout_secs,
            poll_lease_secs,
            forwarder_max_pages,
            forwarder_orphan_secs,
            get_answer_secs,
            redis_acl,
            redis_cluster,
            redis_target,
            allow_group_prompts,
            attachments_max_files,
            attachments_max_total_mb,
            final_notify,
            free_plan_agents,
            trial_days,
            trusted_proxies,
        )
        else {
            return Err(ConfigError::Invalid {
                key: "configuration",
                message: "a value was refused without a reason (a bug: please report it)".into(),
            });
        };
        Ok(Config {
            bind,
            public_url,
            telegram_mode,
            database_url: database_url.into(),
            data_dir,
            redis_url: redis_url.into(),
            redis_cluster,
            redis_target,
            public_redis_url,
            redis_acl,
            bot_token: bot_token.into(),
            webhook_secret: webhook_secret.map(SecretString::from),
            telegram_api_base,
            poll_timeout_secs,
            poll_lease_secs,
            signing_key: v.get("REMOTEAGENT_SIGNING_KEY").map(SecretString::from),
            free_plan_agents,
            trial_days,
            replica_id,
            forwarder_max_pages,
            forwarder_orphan_secs,
            get_answer_secs,
            trusted_proxies,
            metrics_token: v.get("METRICS_TOKEN").map(SecretString::from),
            allow_group_prompts,
            stt,
            attachments_max_files,
            attachments_max_total_bytes: attachments_max_total_mb * 1_000_000,
            final_notify,
            // A refused value was recorded as a problem above.
            queue_max_prompts: queue_max_prompts.unwrap_or(5),
            stream_mode,
        })
    }
}

/// `TELEGRAM_MODE`, or the default: poll without a public URL. Console
/// mode only prints, so it has nothing to poll: its updates are posted to
/// the webhook route by hand (the demo).
fn telegram_mode(
    values: &Values,
    has_public_url: bool,
    console: bool,
) -> Result<TelegramMode, ConfigError> {
    let mode = match values.get("TELEGRAM_MODE").map(|m| m.to_ascii_lowercase()) {
        None if has_public_url || console => TelegramMode::Webhook,
        None => TelegramMode::Poll,
        Some(m) if m == "webhook" => TelegramMode::Webhook,
        Some(m) if m == "poll" => TelegramMode::Poll,
        Some(m) => {
            return Err(values.invalid(
                "TELEGRAM_MODE",
                format!("expected webhook or poll, got {m:?}"),
            ));
        }
    };
    if mode == TelegramMode::Poll && console {
        return Err(values.invalid(
            "TELEGRAM_MODE",
            "console mode (TELEGRAM_API_BASE=console) has no updates to poll: use webhook",
        ));
    }
    Ok(mode)
}

/// `TRUSTED_PROXIES`: comma-separated CIDRs (`10.0.0.0/8`) or single
/// addresses (`127.0.0.1`, taken as /32 or /128).
fn trusted_proxies(values: &Values) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(list) = values.get("TRUSTED_PROXIES") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    values.invalid(
                        "TRUSTED_PROXIES",
                        format!("{item:?} is not a CIDR (10.0.0.0/8) or an address"),
                    )
                })
        })
        .collect()
}

/// Telegram accepts 1–256 characters of `A-Z a-z 0-9 _ -` as a webhook
/// secret; anything else would only fail later, at `setWebhook`. Console
/// mode never registers a webhook, so any value does there.
fn webhook_secret(values: &Values, secret: String, console: bool) -> Result<String, ConfigError> {
    let valid = console
        || secret.len() <= 256
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(values.invalid(
            "TELEGRAM_WEBHOOK_SECRET",
            "use 1 to 256 characters of A-Z, a-z, 0-9, _ and -",
        ));
    }
    Ok(secret)
}

fn hostname_or_unknown() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "cloud".into())
}

#[cfg(test)]
mod tests;
