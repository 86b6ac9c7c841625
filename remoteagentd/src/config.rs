//! The optional config file, `$XDG_CONFIG_HOME/remoteagent/config.toml`.
//!
//! ```toml
//! cloud_url = "https://remoteagent.example"   # env REMOTEAGENT_CLOUD_URL wins
//! secret_store = "keyring"                    # or "file" (opt-in, 0600 files)
//! abort_grace_secs = 5
//! max_prompt_bytes = 32768
//! ```
//!
//! Unknown keys are an error: a typo such as `secret_stor = "file"` would
//! otherwise silently keep the default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The cloud used when neither the config file nor the environment name one.
pub const DEFAULT_CLOUD_URL: &str = "http://127.0.0.1:8080";
/// The environment variable that overrides `cloud_url`.
pub const CLOUD_URL_ENV: &str = "REMOTEAGENT_CLOUD_URL";

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cloud_url: DEFAULT_CLOUD_URL.into(),
            secret_store: SecretStoreKind::Keyring,
            abort_grace_secs: 5,
            max_prompt_bytes: remoteagent_proto::events::MAX_PROMPT_BYTES,
        }
    }
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
            // first line names the problem, which is what a log line needs.
            message: e
                .message()
                .lines()
                .next()
                .unwrap_or("syntax error")
                .to_string()
                + &e.span()
                    .map(|s| format!(" (at byte {})", s.start))
                    .unwrap_or_default(),
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
        if config.abort_grace_secs > 3600 {
            return Err(invalid("abort_grace_secs must be at most 3600"));
        }
        Ok(config)
    }

    pub fn abort_grace(&self) -> Duration {
        Duration::from_secs(self.abort_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
