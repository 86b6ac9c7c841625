//! Configuration: environment variables, optionally backed by a TOML file
//! (`--config` / `REMOTEAGENT_CONFIG`) that may set the same keys, either
//! spelled like the variable (`REDIS_URL = "…"`) or in lower case
//! (`redis_url = "…"`). The environment wins over the file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set (set it in the environment or the config file)")]
    Missing(&'static str),
    #[error("{key} is invalid: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("reading the config file {0}: {1}")]
    File(PathBuf, String),
    #[error("no data directory: set REMOTEAGENT_DATA_DIR")]
    NoDataDir,
}

/// Everything the cloud needs to start. `Debug` hides the secrets.
#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// Where users and daemons reach this cloud, without a trailing slash.
    pub public_url: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub redis_url: String,
    /// The Redis URL daemons are told to use (without credentials).
    pub public_redis_url: String,
    /// False for Redis servers without ACL commands: agents then use the
    /// default user and no per-agent confinement exists.
    pub redis_acl: bool,
    pub bot_token: String,
    pub webhook_secret: String,
    /// `https://api.telegram.org`, a fake's URL in tests, or `console`.
    pub telegram_api_base: String,
    /// base64url seed of the signing key; `None` reads or generates
    /// `{data_dir}/signing.key`.
    pub signing_key: Option<String>,
    pub free_plan_agents: u32,
    pub trial_days: u32,
    /// Names this process in forwarder locks.
    pub replica_id: String,
    /// Pages of output shown live per session; past them the whole output
    /// is attached as a file at the end (`FORWARDER_MAX_PAGES`, ≥ 1).
    pub forwarder_max_pages: usize,
    /// Seconds a session's stream may stay silent while its agent is offline
    /// (no presence key) before the forwarder ends it with an error
    /// (`FORWARDER_ORPHAN_SECS`, ≥ 1).
    pub forwarder_orphan_secs: u64,
    /// Reverse proxies whose `X-Forwarded-For` is believed
    /// (`TRUSTED_PROXIES`, comma-separated CIDRs or addresses; none by
    /// default: the TCP peer is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Every group chat counts as opted in for its members' agents
    /// (`ALLOW_GROUP_PROMPTS`; default false: `/allowgroup` per group).
    pub allow_group_prompts: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("database_url", &redact_url(&self.database_url))
            .field("data_dir", &self.data_dir)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("public_redis_url", &redact_url(&self.public_redis_url))
            .field("redis_acl", &self.redis_acl)
            .field("bot_token", &"hidden")
            .field("webhook_secret", &"hidden")
            .field("telegram_api_base", &self.telegram_api_base)
            .field("signing_key", &self.signing_key.as_ref().map(|_| "hidden"))
            .field("free_plan_agents", &self.free_plan_agents)
            .field("trial_days", &self.trial_days)
            .field("replica_id", &self.replica_id)
            .field("forwarder_max_pages", &self.forwarder_max_pages)
            .field("forwarder_orphan_secs", &self.forwarder_orphan_secs)
            .field("trusted_proxies", &self.trusted_proxies)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "hidden"),
            )
            .field("allow_group_prompts", &self.allow_group_prompts)
            .finish()
    }
}

/// Drops a password from `scheme://user:password@host/…` for display.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) if auth.contains(':') => {
            let user = auth.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:hidden@{host}")
        }
        _ => url.to_string(),
    }
}

/// Drops `user:password@` from a URL.
pub fn strip_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{path}"),
        None => url.to_string(),
    }
}

/// Where values come from: the environment first, then the file.
struct Source {
    env: HashMap<String, String>,
    file: HashMap<String, String>,
}

impl Source {
    fn get(&self, key: &str) -> Option<String> {
        self.env
            .get(key)
            .or_else(|| self.file.get(key))
            .or_else(|| self.file.get(&key.to_ascii_lowercase()))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, key: &'static str) -> Result<String, ConfigError> {
        self.get(key).ok_or(ConfigError::Missing(key))
    }

    fn parsed<T: std::str::FromStr>(&self, key: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
                key,
                message: e.to_string(),
            }),
        }
    }

    fn flag(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError::Invalid {
                key,
                message: format!("expected true or false, got {v:?}"),
            }),
        }
    }
}

fn read_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::File(path.to_path_buf(), e.to_string()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| ConfigError::File(path.to_path_buf(), e.to_string()))?;
    let mut out = HashMap::new();
    for (k, v) in table {
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError::File(
                    path.to_path_buf(),
                    format!("{k}: expected a string, number or boolean, got {other}"),
                ));
            }
        };
        out.insert(k, value);
    }
    Ok(out)
}

impl Config {
    /// Reads the process environment and, if given, the config file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let file_path = file
            .map(Path::to_path_buf)
            .or_else(|| env.get("REMOTEAGENT_CONFIG").map(PathBuf::from));
        let file = match file_path {
            Some(p) => read_file(&p)?,
            None => HashMap::new(),
        };
        Self::from_source(&Source { env, file })
    }

    /// Builds a config from explicit key/value pairs (tests, embedding).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let env = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::from_source(&Source {
            env,
            file: HashMap::new(),
        })
    }

    fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let bind = src.parsed("REMOTEAGENT_BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        let public_url = src
            .required("PUBLIC_URL")?
            .trim_end_matches('/')
            .to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                key: "PUBLIC_URL",
                message: "must start with http:// or https://".into(),
            });
        }
        let data_dir = match src.get("REMOTEAGENT_DATA_DIR") {
            Some(d) => PathBuf::from(d),
            None => directories::ProjectDirs::from("", "", "remoteagent-cloud")
                .map(|d| d.data_dir().to_path_buf())
                .ok_or(ConfigError::NoDataDir)?,
        };
        let database_url = match src.get("DATABASE_URL") {
            Some(u) => u,
            None => format!("sqlite://{}?mode=rwc", data_dir.join("cloud.db").display()),
        };
        let redis_url = src
            .get("REDIS_URL")
            .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        // Daemons must never learn the cloud's own Redis password: when the
        // public URL is derived from REDIS_URL, its credentials are dropped.
        let public_redis_url = src
            .get("PUBLIC_REDIS_URL")
            .unwrap_or_else(|| strip_credentials(&redis_url));
        let replica_id = src.get("REMOTEAGENT_REPLICA_ID").unwrap_or_else(|| {
            let host = hostname_or_unknown();
            format!("{host}-{}", std::process::id())
        });
        let forwarder_max_pages =
            src.parsed("FORWARDER_MAX_PAGES", crate::forwarder::DEFAULT_MAX_PAGES)?;
        if forwarder_max_pages == 0 {
            return Err(ConfigError::Invalid {
                key: "FORWARDER_MAX_PAGES",
                message: "must be at least 1".into(),
            });
        }
        let forwarder_orphan_secs = src.parsed(
            "FORWARDER_ORPHAN_SECS",
            crate::forwarder::DEFAULT_ORPHAN_SECS,
        )?;
        if forwarder_orphan_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "FORWARDER_ORPHAN_SECS",
                message: "must be at least 1".into(),
            });
        }
        let telegram_api_base = src
            .get("TELEGRAM_API_BASE")
            .unwrap_or_else(|| "https://api.telegram.org".into());
        Ok(Config {
            bind,
            public_url,
            database_url,
            data_dir,
            redis_url,
            public_redis_url,
            redis_acl: src.flag("REDIS_ACL", true)?,
            bot_token: src.required("TELEGRAM_BOT_TOKEN")?,
            webhook_secret: webhook_secret(src, telegram_api_base == "console")?,
            telegram_api_base,
            signing_key: src.get("REMOTEAGENT_SIGNING_KEY"),
            free_plan_agents: src.parsed("FREE_PLAN_AGENTS", 1)?,
            trial_days: src.parsed("TRIAL_DAYS", 14)?,
            replica_id,
            forwarder_max_pages,
            forwarder_orphan_secs,
            trusted_proxies: trusted_proxies(src)?,
            metrics_token: src.get("METRICS_TOKEN"),
            allow_group_prompts: src.flag("ALLOW_GROUP_PROMPTS", false)?,
        })
    }
}

/// `TRUSTED_PROXIES`: comma-separated CIDRs (`10.0.0.0/8`) or single
/// addresses (`127.0.0.1`, taken as /32 or /128).
fn trusted_proxies(src: &Source) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(list) = src.get("TRUSTED_PROXIES") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::Invalid {
                    key: "TRUSTED_PROXIES",
                    message: format!("{item:?} is not a CIDR (10.0.0.0/8) or an address"),
                })
        })
        .collect()
}

/// Telegram accepts 1–256 characters of `A-Z a-z 0-9 _ -` as a webhook
/// secret; anything else would only fail later, at `setWebhook`. Console
/// mode never registers a webhook, so any value does there.
fn webhook_secret(src: &Source, console: bool) -> Result<String, ConfigError> {
    let secret = src.required("TELEGRAM_WEBHOOK_SECRET")?;
    let valid = console
        || secret.len() <= 256
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(ConfigError::Invalid {
            key: "TELEGRAM_WEBHOOK_SECRET",
            message: "use 1 to 256 characters of A-Z, a-z, 0-9, _ and -".into(),
        });
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
mod tests {
    use super::*;

    const BASE: [(&str, &str); 4] = [
        ("PUBLIC_URL", "https://ra.example/"),
        ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ("TELEGRAM_WEBHOOK_SECRET", "s3cret-hook"),
        ("REMOTEAGENT_DATA_DIR", "/tmp/ra-test"),
    ];

    #[test]
    fn defaults_apply() {
        let c = Config::from_pairs(BASE).unwrap();
        assert_eq!(c.public_url, "https://ra.example");
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(c.public_redis_url, c.redis_url);
        assert!(c.redis_acl);
        assert_eq!(c.free_plan_agents, 1);
        assert_eq!(c.trial_days, 14);
        assert_eq!(c.database_url, "sqlite:///tmp/ra-test/cloud.db?mode=rwc");
        assert_eq!(c.forwarder_max_pages, 8);
        assert_eq!(c.forwarder_orphan_secs, 45);
    }

    #[test]
    fn the_orphan_grace_is_configurable_and_positive() {
        let mut pairs = BASE.to_vec();
        pairs.push(("FORWARDER_ORPHAN_SECS", "30"));
        assert_eq!(Config::from_pairs(pairs).unwrap().forwarder_orphan_secs, 30);
        for bad in ["0", "-5", "soon"] {
            let mut pairs = BASE.to_vec();
            pairs.push(("FORWARDER_ORPHAN_SECS", bad));
            let err = Config::from_pairs(pairs).unwrap_err().to_string();
            assert!(err.starts_with("FORWARDER_ORPHAN_SECS is invalid"), "{err}");
        }
    }

    #[test]
    fn the_page_budget_is_configurable_and_positive() {
        let mut pairs = BASE.to_vec();
        pairs.push(("FORWARDER_MAX_PAGES", "3"));
        assert_eq!(Config::from_pairs(pairs).unwrap().forwarder_max_pages, 3);
        for bad in ["0", "-1", "many"] {
            let mut pairs = BASE.to_vec();
            pairs.push(("FORWARDER_MAX_PAGES", bad));
            let err = Config::from_pairs(pairs).unwrap_err().to_string();
            assert!(err.starts_with("FORWARDER_MAX_PAGES is invalid"), "{err}");
        }
    }

    #[test]
    fn missing_and_invalid_values_are_named() {
        let err = Config::from_pairs(
            BASE.iter()
                .copied()
                .filter(|(k, _)| *k != "TELEGRAM_BOT_TOKEN"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "TELEGRAM_BOT_TOKEN is not set (set it in the environment or the config file)"
        );
        let mut secret = BASE.to_vec();
        secret.retain(|(k, _)| *k != "TELEGRAM_WEBHOOK_SECRET");
        secret.push(("TELEGRAM_WEBHOOK_SECRET", "has spaces!"));
        let mut console = secret.clone();
        console.push(("TELEGRAM_API_BASE", "console"));
        assert!(Config::from_pairs(console).is_ok());
        assert!(
            Config::from_pairs(secret)
                .unwrap_err()
                .to_string()
                .starts_with("TELEGRAM_WEBHOOK_SECRET is invalid")
        );
        let mut bad = BASE.to_vec();
        bad.push(("REDIS_ACL", "maybe"));
        assert!(
            Config::from_pairs(bad)
                .unwrap_err()
                .to_string()
                .starts_with("REDIS_ACL is invalid")
        );
    }

    #[test]
    fn the_public_redis_url_never_carries_the_cloud_password() {
        let mut pairs = BASE.to_vec();
        pairs.push(("REDIS_URL", "redis://admin:hunter2@redis.internal:6379/0"));
        let c = Config::from_pairs(pairs.clone()).unwrap();
        assert_eq!(c.public_redis_url, "redis://redis.internal:6379/0");
        pairs.push(("PUBLIC_REDIS_URL", "rediss://redis.example:6380"));
        let c = Config::from_pairs(pairs).unwrap();
        assert_eq!(c.public_redis_url, "rediss://redis.example:6380");
        assert_eq!(strip_credentials("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn trusted_proxies_parse() {
        assert!(Config::from_pairs(BASE).unwrap().trusted_proxies.is_empty());
        let mut pairs = BASE.to_vec();
        pairs.push(("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1 ,::1,fd00::/8"));
        let c = Config::from_pairs(pairs).unwrap();
        let shown: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "127.0.0.1/32", "::1/128", "fd00::/8"]);
        let mut bad = BASE.to_vec();
        bad.push(("TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal"));
        let err = Config::from_pairs(bad).unwrap_err().to_string();
        assert!(err.starts_with("TRUSTED_PROXIES is invalid"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let mut pairs = BASE.to_vec();
        pairs.push(("DATABASE_URL", "postgres://u:pw123@db/x"));
        pairs.push(("REMOTEAGENT_SIGNING_KEY", "seedseed"));
        pairs.push(("METRICS_TOKEN", "metr1cs"));
        let c = Config::from_pairs(pairs).unwrap();
        let dbg = format!("{c:?}");
        for secret in ["123:abc", "s3cret-hook", "pw123", "seedseed", "metr1cs"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }

    #[test]
    fn file_keys_in_either_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "redis_url = \"redis://r:1\"\nTRIAL_DAYS = 3\n").unwrap();
        let file = read_file(&path).unwrap();
        let env = BASE
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = Config::from_source(&Source { env, file }).unwrap();
        assert_eq!(c.redis_url, "redis://r:1");
        assert_eq!(c.trial_days, 3);
    }
}
