//! Every setting named once ([`SETTINGS`]: name, default, help) and read
//! through clap's `env` support: clap reads each variable and applies the
//! defaults, so `--help`, the defaults and the names cannot disagree.
//! Values from the config file or from explicit pairs reach clap as
//! in-process `--NAME=value` arguments (never the process's argv), below
//! the environment.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};

use super::ConfigError;
use super::file::{File, FileValue};

/// A setting's default, as clap applies it or as the help describes it.
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    /// Unset unless given.
    None,
    /// This literal value.
    Value(&'static str),
    /// Worked out from other settings or the machine (described here).
    Derived(&'static str),
}

/// One setting: its environment variable (also its key in the file, in
/// either case), default and help.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub default: DefaultValue,
    pub help: &'static str,
    /// Never shown by clap (`hide_env_values`): tokens, passwords, keys.
    pub secret: bool,
}

const fn setting(name: &'static str, default: DefaultValue, help: &'static str) -> Setting {
    Setting {
        name,
        default,
        help,
        secret: false,
    }
}

const fn secret(name: &'static str, default: DefaultValue, help: &'static str) -> Setting {
    Setting {
        name,
        default,
        help,
        secret: true,
    }
}

/// Every setting of the cloud: the one place for names, defaults and help.
pub const SETTINGS: &[Setting] = &[
    secret(
        "TELEGRAM_BOT_TOKEN",
        DefaultValue::None,
        "the bot's token from @BotFather (this or TELEGRAM_BOT_TOKEN_FILE is required)",
    ),
    setting(
        "TELEGRAM_BOT_TOKEN_FILE",
        DefaultValue::None,
        "a file holding the bot's token, readable by this user only (mode 0600); `remoteagentctl setup` writes one",
    ),
    setting(
        "PUBLIC_URL",
        DefaultValue::None,
        "where users and daemons reach this server; needed by webhook mode and the /connect page",
    ),
    setting(
        "TELEGRAM_MODE",
        DefaultValue::Derived("poll without PUBLIC_URL, else webhook"),
        "webhook (Telegram posts updates to PUBLIC_URL/api/telegram) or poll (getUpdates)",
    ),
    secret(
        "TELEGRAM_WEBHOOK_SECRET",
        DefaultValue::None,
        "secret token Telegram sends with each update (required in webhook mode)",
    ),
    setting(
        "TELEGRAM_API_BASE",
        DefaultValue::Value("https://api.telegram.org"),
        "the Bot API, or `console` to print the bot's messages (webhook mode)",
    ),
    setting(
        "TELEGRAM_POLL_TIMEOUT_SECS",
        DefaultValue::Value("25"),
        "poll mode: how long one getUpdates call waits for an update (1-50)",
    ),
    setting(
        "TELEGRAM_POLL_LEASE_SECS",
        DefaultValue::Value("15"),
        "poll mode: the poller's Redis lease; another replica takes over this long after it dies (3-3600)",
    ),
    setting(
        "REMOTEAGENT_BIND",
        DefaultValue::Value("127.0.0.1:8080"),
        "listen address",
    ),
    setting(
        "REMOTEAGENT_DATA_DIR",
        DefaultValue::Derived("XDG data dir/remoteagent-cloud"),
        "data directory (SQLite database, signing key)",
    ),
    secret(
        "DATABASE_URL",
        DefaultValue::Derived("SQLite file in the data dir"),
        "sqlite:… or postgres://…",
    ),
    secret(
        "REDIS_URL",
        DefaultValue::Value("redis://127.0.0.1:6379"),
        "the cloud's Redis, with its admin credentials if any; several URLs, comma-separated, are a Redis Cluster's seed nodes",
    ),
    setting(
        "REDIS_CLUSTER",
        DefaultValue::Value("false"),
        "REDIS_URL is a Redis Cluster even when it names one node (a list of URLs always is)",
    ),
    setting(
        "PUBLIC_REDIS_URL",
        DefaultValue::Derived(
            "REDIS_URL without credentials (a single cluster seed marked ?cluster=true)",
        ),
        "the Redis URL daemons are told",
    ),
    setting(
        "REDIS_ACL",
        DefaultValue::Value("true"),
        "per-agent Redis users; false for servers without ACL",
    ),
    secret(
        "REMOTEAGENT_SIGNING_KEY",
        DefaultValue::Derived("read or generated in the data dir"),
        "base64url Ed25519 seed of the envelope signing key",
    ),
    setting(
        "REMOTEAGENT_REPLICA_ID",
        DefaultValue::Derived("hostname-pid"),
        "names this process in forwarder locks and the poll lease",
    ),
    setting(
        "FREE_PLAN_AGENTS",
        DefaultValue::Value("1"),
        "agents allowed after the trial",
    ),
    setting("TRIAL_DAYS", DefaultValue::Value("14"), "trial length"),
    setting(
        "FORWARDER_MAX_PAGES",
        DefaultValue::Value("8"),
        "pages of output shown live per run; then a file (at least 1)",
    ),
    setting(
        "FORWARDER_ORPHAN_SECS",
        DefaultValue::Value("45"),
        "end a silent run whose agent is offline this long (at least 1)",
    ),
    setting(
        "GET_ANSWER_SECS",
        DefaultValue::Value("20"),
        "how long /get and /sessions wait for the daemon's first answer (at least 1)",
    ),
    setting(
        "TRUSTED_PROXIES",
        DefaultValue::Derived("none: the TCP peer is the client"),
        "comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed",
    ),
    secret(
        "METRICS_TOKEN",
        DefaultValue::Derived("none: /metrics is open"),
        "if set, GET /metrics requires `Authorization: Bearer <token>`",
    ),
    setting(
        "ALLOW_GROUP_PROMPTS",
        DefaultValue::Value("false"),
        "group chats count as opted in without /allowgroup",
    ),
    setting(
        "STT_URL",
        DefaultValue::Derived("none: voice notes are refused"),
        "base URL of an OpenAI-compatible speech-to-text API that transcribes voice notes (https://api.openai.com/v1, http://127.0.0.1:8000/v1); /audio/transcriptions is appended",
    ),
    secret(
        "STT_API_KEY",
        DefaultValue::None,
        "sent to STT_URL as `Authorization: Bearer <key>` (or STT_API_KEY_FILE)",
    ),
    setting(
        "STT_API_KEY_FILE",
        DefaultValue::None,
        "a file holding STT_API_KEY, readable by this user only (mode 0600)",
    ),
    setting(
        "STT_MODEL",
        DefaultValue::Value(super::DEFAULT_STT_MODEL),
        "the transcription model asked for",
    ),
    setting(
        "STT_TIMEOUT_SECS",
        DefaultValue::Value("60"),
        "longest a transcription may take, upload included (1-600)",
    ),
    setting(
        "ATTACHMENTS_MAX_FILES",
        DefaultValue::Value("10"),
        "photos and documents one prompt may carry (at least 1)",
    ),
    setting(
        "ATTACHMENTS_MAX_TOTAL_MB",
        DefaultValue::Value("50"),
        "megabytes (1,000,000 bytes) of files one prompt may carry (at least 1)",
    ),
    setting(
        "FINAL_NOTIFY",
        DefaultValue::Value("true"),
        "when a run ends, also send a new message (the phone notifies; edits are silent); false: only the output message is updated. Each user may turn it off with /notify off",
    ),
    setting(
        "QUEUE_MAX_PROMPTS",
        DefaultValue::Value("5"),
        "prompts that may wait per agent while it is busy with a run (1-100)",
    ),
    setting(
        "STREAM_MODE",
        DefaultValue::Value("edit"),
        "how a run's output is shown while it streams: edit (one message edited about once a second) or draft (in private chats, a live draft that Telegram animates, saved as messages when a page fills or the run ends; groups and chats that refuse drafts get edits)",
    ),
];

/// The settings as `--help` lists them.
/// The canonical name of the setting `key` spells (in either case), if any.
pub(super) fn canonical_name(key: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(key))
        .map(|s| s.name)
}

pub fn settings_help() -> String {
    let mut out =
        String::from("Configuration (environment, or the same keys in the --config TOML file):\n");
    for s in SETTINGS {
        let default = match s.default {
            DefaultValue::None => String::new(),
            DefaultValue::Value(v) | DefaultValue::Derived(v) => format!(" [{v}]"),
        };
        out.push_str(&format!("  {:<27}{}{default}\n", s.name, s.help));
    }
    out
}

/// Where the environment comes from.
pub(super) enum Env {
    /// The process environment, read by clap.
    Process,
    /// Explicit pairs (tests, embedding); the process environment is ignored.
    Pairs(HashMap<String, String>),
}

/// The settings' values once clap has applied the environment, the file
/// and the defaults, in that order.
pub(super) struct Values {
    matches: clap::ArgMatches,
    /// The file's values that were used (the environment did not override
    /// them), for saying where a bad one is.
    from_file: HashMap<&'static str, FileValue>,
    file_path: PathBuf,
}

fn is_blank(v: &str) -> bool {
    v.trim().is_empty()
}

impl Values {
    pub(super) fn resolve(env: &Env, file: File) -> Result<Values, ConfigError> {
        let mut argv: Vec<String> = Vec::new();
        let mut from_file = HashMap::new();
        let mut command = settings_command();
        let mut not_text = Vec::new();
        for s in SETTINGS {
            let given = match env {
                Env::Process => match std::env::var_os(s.name) {
                    None => false,
                    Some(v) => match v.to_str() {
                        Some(v) => !is_blank(v),
                        None => {
                            not_text.push(ConfigError::Invalid {
                                key: s.name,
                                message: "not valid UTF-8".into(),
                            });
                            false
                        }
                    },
                },
                Env::Pairs(_) => false,
            };
            if !given {
                // An unset or empty variable must not hide the file or the
                // default: clap would take the empty value.
                command = command.mut_arg(s.name, |a| a.env(None));
            }
            let pair = match env {
                Env::Pairs(pairs) => pairs.get(s.name).filter(|v| !is_blank(v)).cloned(),
                Env::Process => None,
            };
            let fallback = match (given, pair, file.values.get(s.name)) {
                (true, _, _) => None,
                (false, Some(v), _) => Some(v),
                (false, None, Some(f)) => {
                    from_file.insert(s.name, f.clone());
                    Some(f.value.clone())
                }
                (false, None, None) => None,
            };
            if let Some(v) = fallback {
                // In-process only: these never reach the process's argv.
                argv.push(format!("--{}={v}", s.name));
            }
        }
        match not_text.len() {
            0 => {}
            1 => return Err(not_text.remove(0)),
            _ => return Err(ConfigError::Several(not_text)),
        }
        let matches = command.try_get_matches_from(argv).map_err(|e| {
            let text = e.to_string();
            ConfigError::Invalid {
                key: "environment",
                message: text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
                    .to_string(),
            }
        })?;
        Ok(Values {
            matches,
            from_file,
            file_path: file.path,
        })
    }

    pub(super) fn get(&self, key: &'static str) -> Option<String> {
        debug_assert!(SETTINGS.iter().any(|s| s.name == key), "{key}");
        self.matches
            .get_one::<String>(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// `message`, plus where the value is when it came from the file.
    pub(super) fn invalid(&self, key: &'static str, message: impl Into<String>) -> ConfigError {
        let mut message = message.into();
        if let Some(f) = self.from_file.get(key) {
            message.push_str(&format!(
                " (config file {}, line {}, column {})",
                self.file_path.display(),
                f.line,
                f.column
            ));
        }
        ConfigError::Invalid { key, message }
    }
}

/// The settings as a clap command: clap reads each variable (`env`) and
/// applies the defaults; the values come in as `--NAME=value`.
fn settings_command() -> Command {
    let args = SETTINGS.iter().map(|s| {
        let arg = Arg::new(s.name)
            .long(s.name)
            .env(s.name)
            .hide_env_values(s.secret)
            .help(s.help)
            .action(ArgAction::Set)
            .allow_hyphen_values(true);
        match s.default {
            DefaultValue::Value(v) => arg.default_value(v),
            DefaultValue::None | DefaultValue::Derived(_) => arg,
        }
    });
    Command::new("remoteagent-cloud")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_the_code_defaults() {
        let default_of =
            |name: &str| match SETTINGS.iter().find(|s| s.name == name).unwrap().default {
                DefaultValue::Value(v) => v.to_string(),
                other => panic!("{other:?}"),
            };
        assert_eq!(
            default_of("FORWARDER_MAX_PAGES"),
            crate::forwarder::DEFAULT_MAX_PAGES.to_string()
        );
        assert_eq!(
            default_of("FORWARDER_ORPHAN_SECS"),
            crate::forwarder::DEFAULT_ORPHAN_SECS.to_string()
        );
        assert_eq!(
            default_of("STT_TIMEOUT_SECS"),
            super::super::DEFAULT_STT_TIMEOUT_SECS.to_string()
        );
        assert_eq!(
            default_of("GET_ANSWER_SECS"),
            crate::bot::get::DEFAULT_ANSWER_SECS.to_string()
        );
        assert_eq!(
            default_of("ATTACHMENTS_MAX_FILES"),
            crate::bot::attachments::DEFAULT_MAX_FILES.to_string()
        );
        assert_eq!(
            default_of("ATTACHMENTS_MAX_TOTAL_MB"),
            crate::bot::attachments::DEFAULT_MAX_TOTAL_MB.to_string()
        );
        let help = settings_help();
        for s in SETTINGS {
            assert!(help.contains(s.name), "{help}");
        }
        assert!(
            help.contains("[poll without PUBLIC_URL, else webhook]"),
            "{help}"
        );
    }
}
