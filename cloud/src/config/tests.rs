//! The settings as the binary reads them: defaults, every problem at once,
//! the file and the environment, secrets never shown.

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
    assert_eq!(c.public_url.as_deref(), Some("https://ra.example"));
    assert_eq!(c.telegram_mode, TelegramMode::Webhook);
    assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(c.redis_url.expose_secret(), "redis://127.0.0.1:6379");
    assert_eq!(c.public_redis_url, c.redis_url.expose_secret());
    assert!(c.redis_acl);
    assert_eq!(c.free_plan_agents, 1);
    assert_eq!(c.trial_days, 14);
    assert_eq!(
        c.database_url.expose_secret(),
        "sqlite:///tmp/ra-test/cloud.db?mode=rwc"
    );
    assert_eq!(c.forwarder_max_pages, 8);
    assert_eq!(c.forwarder_orphan_secs, 45);
    assert_eq!(c.get_answer_secs, 20);
    assert_eq!(c.poll_timeout_secs, 25);
    assert_eq!(c.poll_lease_secs, 15);
    assert!(!c.allow_group_prompts);
    assert_eq!(c.attachments_max_files, 10);
    assert_eq!(c.attachments_max_total_bytes, 50_000_000);
    assert!(c.final_notify);
    assert!(c.metrics_token.is_none() && c.signing_key.is_none());
}

#[test]
fn attachment_limits_are_positive() {
    let mut pairs = BASE.to_vec();
    pairs.extend([
        ("ATTACHMENTS_MAX_FILES", "3"),
        ("ATTACHMENTS_MAX_TOTAL_MB", "7"),
    ]);
    let c = Config::from_pairs(pairs).unwrap();
    assert_eq!(c.attachments_max_files, 3);
    assert_eq!(c.attachments_max_total_bytes, 7_000_000);
    for (key, value) in [
        ("ATTACHMENTS_MAX_FILES", "0"),
        ("ATTACHMENTS_MAX_TOTAL_MB", "0"),
        ("ATTACHMENTS_MAX_TOTAL_MB", "lots"),
    ] {
        let mut pairs = BASE.to_vec();
        pairs.push((key, value));
        let e = Config::from_pairs(pairs).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}

/// The table's literal defaults are the ones the code relies on.
#[test]
fn without_a_public_url_the_cloud_polls() {
    let c = Config::from_pairs([
        ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ("REMOTEAGENT_DATA_DIR", "/tmp/ra-test"),
    ])
    .unwrap();
    assert_eq!(c.telegram_mode, TelegramMode::Poll);
    assert!(c.public_url.is_none());
    assert!(c.webhook_secret.is_none());
    // A webhook secret given anyway is not kept: nothing may post updates.
    let mut pairs = BASE.to_vec();
    pairs.push(("TELEGRAM_MODE", "POLL"));
    let c = Config::from_pairs(pairs).unwrap();
    assert_eq!(c.telegram_mode, TelegramMode::Poll);
    assert_eq!(c.public_url.as_deref(), Some("https://ra.example"));
    assert!(c.webhook_secret.is_none());
    // Console mode prints; it has nothing to poll.
    let mut console = BASE.to_vec();
    console.push(("TELEGRAM_API_BASE", "console"));
    assert_eq!(
        Config::from_pairs(console.clone()).unwrap().telegram_mode,
        TelegramMode::Webhook
    );
    console.push(("TELEGRAM_MODE", "poll"));
    let err = Config::from_pairs(console).unwrap_err().to_string();
    assert!(err.starts_with("TELEGRAM_MODE is invalid"), "{err}");
    let mut bad = BASE.to_vec();
    bad.push(("TELEGRAM_MODE", "push"));
    let err = Config::from_pairs(bad).unwrap_err().to_string();
    assert!(err.contains("expected webhook or poll"), "{err}");
}

#[test]
fn every_missing_setting_is_reported_at_once() {
    let err = Config::from_pairs([
        ("TELEGRAM_MODE", "webhook"),
        ("REMOTEAGENT_DATA_DIR", "/tmp/ra-test"),
    ])
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "TELEGRAM_BOT_TOKEN, PUBLIC_URL, TELEGRAM_WEBHOOK_SECRET are not set \
         (set them in the environment or the config file)"
    );
    // Missing and invalid together: both said, in one line.
    let err = Config::from_pairs([
        ("TELEGRAM_MODE", "webhook"),
        ("REMOTEAGENT_DATA_DIR", "/tmp/ra-test"),
        ("TRIAL_DAYS", "soon"),
        ("REDIS_ACL", "maybe"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("TELEGRAM_BOT_TOKEN, PUBLIC_URL"), "{err}");
    assert!(err.contains("; REDIS_ACL is invalid"), "{err}");
    assert!(err.contains("; TRIAL_DAYS is invalid"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
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
fn poll_timings_are_bounded() {
    for (key, bad) in [
        ("TELEGRAM_POLL_TIMEOUT_SECS", "0"),
        ("TELEGRAM_POLL_TIMEOUT_SECS", "51"),
        ("TELEGRAM_POLL_LEASE_SECS", "2"),
    ] {
        let mut pairs = BASE.to_vec();
        pairs.push((key, bad));
        let err = Config::from_pairs(pairs).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{key} is invalid")), "{err}");
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
    pairs.push(("REDIS_URL", "redis://admin:hunter2@r:6379"));
    pairs.push(("REMOTEAGENT_SIGNING_KEY", "seedseed"));
    pairs.push(("METRICS_TOKEN", "metr1cs"));
    let c = Config::from_pairs(pairs).unwrap();
    let dbg = format!("{c:?}");
    for secret in [
        "123:abc",
        "s3cret-hook",
        "pw123",
        "hunter2",
        "seedseed",
        "metr1cs",
    ] {
        assert!(!dbg.contains(secret), "{dbg}");
    }
    assert!(dbg.contains("https://ra.example"), "{dbg}");
}

fn load_file(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let file = read_file(&path, settings::canonical_name)?;
    let env = BASE
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_values(&Values::resolve(&Env::Pairs(env), file)?)
}

#[test]
fn file_keys_in_either_case() {
    let c = load_file("redis_url = \"redis://r:1\"\nTRIAL_DAYS = 3\nredis_acl = false\n").unwrap();
    assert_eq!(c.redis_url.expose_secret(), "redis://r:1");
    assert_eq!(c.trial_days, 3);
    assert!(!c.redis_acl);
}

/// `FINAL_NOTIFY` (env) or `final_notify` (cloud.toml) turns the message
/// at the end of a run off for everyone.
#[test]
fn the_end_of_run_message_can_be_turned_off() {
    assert!(!load_file("final_notify = false\n").unwrap().final_notify);
    let mut pairs = BASE.to_vec();
    pairs.push(("FINAL_NOTIFY", "false"));
    assert!(!Config::from_pairs(pairs).unwrap().final_notify);
    let mut pairs = BASE.to_vec();
    pairs.push(("FINAL_NOTIFY", "sometimes"));
    let err = Config::from_pairs(pairs).unwrap_err().to_string();
    assert!(err.starts_with("FINAL_NOTIFY is invalid"), "{err}");
}

#[test]
fn the_environment_wins_over_the_file() {
    // BASE (the environment here) sets PUBLIC_URL; the file's is ignored.
    let c = load_file("public_url = \"https://file.example\"\n").unwrap();
    assert_eq!(c.public_url.as_deref(), Some("https://ra.example"));
}

#[test]
fn unknown_file_keys_are_refused_by_name() {
    let err = load_file("trial_days = 3\nredis_ulr = \"redis://r:1\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown key `redis_ulr` at line 2, column 1"),
        "{err}"
    );
    let err = load_file("[server]\nbind = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `server` at line 1"), "{err}");
}

#[test]
fn a_bad_file_value_says_where_it_is() {
    let err = load_file("trial_days = 3\n  forwarder_max_pages = 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("FORWARDER_MAX_PAGES is invalid: must be at least 1 (config file "),
        "{err}"
    );
    assert!(err.ends_with("line 2, column 25)"), "{err}");
    let err = load_file("trial_days = [1, 2]\n").unwrap_err().to_string();
    assert!(
        err.contains(
            "trial_days at line 1, column 14: expected a string, number or boolean, got array"
        ),
        "{err}"
    );
    let err = load_file("trial_days = = 3\n").unwrap_err().to_string();
    assert!(err.contains("not valid TOML at line 1, column"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `remoteagentctl setup` keeps the token in a 0600 file; the cloud reads it
/// from there and refuses a copy others could read.
#[test]
fn the_token_can_come_from_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot-token");
    std::fs::write(&path, "42:from-file\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = path.to_str().unwrap();
    let pairs = [
        ("TELEGRAM_BOT_TOKEN_FILE", file),
        ("REMOTEAGENT_DATA_DIR", "/tmp/ra-test"),
    ];
    let c = Config::from_pairs(pairs).unwrap();
    assert_eq!(c.bot_token(), "42:from-file");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Config::from_pairs(pairs).unwrap_err().to_string();
    assert!(
        err.contains("can be read by other users (mode 644): run `chmod 600"),
        "{err}"
    );
    assert!(!err.contains("from-file"), "the token leaked: {err}");

    let err = Config::from_pairs([
        ("TELEGRAM_BOT_TOKEN_FILE", "/nonexistent/bot-token"),
        ("REMOTEAGENT_DATA_DIR", "/tmp/ra-test"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("TELEGRAM_BOT_TOKEN_FILE is invalid: cannot read /nonexistent/bot-token"),
        "{err}"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = Config::from_pairs([
        ("TELEGRAM_BOT_TOKEN_FILE", file),
        ("TELEGRAM_BOT_TOKEN", "1:x"),
        ("REMOTEAGENT_DATA_DIR", "/tmp/ra-test"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("set only one of them"), "{err}");
}

/// Voice notes: off without `STT_URL`; the key from the environment or a
/// private file, never shown; a half-done set-up refused at start.
#[test]
fn speech_to_text_settings() {
    use std::os::unix::fs::PermissionsExt;
    assert!(Config::from_pairs(BASE).unwrap().stt.is_none());

    let mut pairs = BASE.to_vec();
    pairs.push(("STT_URL", "http://127.0.0.1:8000/v1/"));
    let stt = Config::from_pairs(pairs.clone()).unwrap().stt.unwrap();
    assert_eq!(
        stt.endpoint,
        "http://127.0.0.1:8000/v1/audio/transcriptions"
    );
    assert_eq!(stt.model, "whisper-1");
    assert_eq!(stt.timeout, std::time::Duration::from_secs(60));
    assert!(stt.api_key.is_none());

    let mut with_key = pairs.clone();
    with_key.extend([
        ("STT_API_KEY", "sk-very-secret"),
        ("STT_MODEL", "Systran/faster-whisper-small"),
        ("STT_TIMEOUT_SECS", "5"),
    ]);
    let c = Config::from_pairs(with_key).unwrap();
    let stt = c.stt.as_ref().unwrap();
    assert_eq!(
        stt.api_key.as_ref().unwrap().expose_secret(),
        "sk-very-secret"
    );
    assert_eq!(stt.model, "Systran/faster-whisper-small");
    assert_eq!(stt.timeout, std::time::Duration::from_secs(5));
    assert!(!format!("{c:?}").contains("sk-very-secret"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stt-key");
    std::fs::write(&path, "sk-from-file\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = path.to_str().unwrap();
    let mut from_file = pairs.clone();
    from_file.push(("STT_API_KEY_FILE", file));
    let stt = Config::from_pairs(from_file.clone()).unwrap().stt.unwrap();
    assert_eq!(stt.api_key.unwrap().expose_secret(), "sk-from-file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = Config::from_pairs(from_file.clone())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("STT_API_KEY_FILE is invalid"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains("sk-from-file"), "{err}");
    from_file.push(("STT_API_KEY", "sk-x"));
    let err = Config::from_pairs(from_file).unwrap_err().to_string();
    assert!(err.contains("set only one of them"), "{err}");

    // A key without a server, a URL that is not one, a timeout of 0.
    let mut half = BASE.to_vec();
    half.push(("STT_API_KEY", "sk-x"));
    let err = Config::from_pairs(half).unwrap_err().to_string();
    assert!(err.starts_with("STT_URL is invalid: is not set"), "{err}");
    let mut bad = BASE.to_vec();
    bad.extend([("STT_URL", "api.openai.com/v1"), ("STT_TIMEOUT_SECS", "0")]);
    let err = Config::from_pairs(bad).unwrap_err().to_string();
    assert!(
        err.contains("STT_URL is invalid: must start with http"),
        "{err}"
    );
    assert!(
        err.contains("STT_TIMEOUT_SECS is invalid: must be at least 1"),
        "{err}"
    );
}

#[test]
fn redis_cluster_is_read_with_the_url() {
    let c = Config::from_pairs(BASE).unwrap();
    assert!(!c.redis_cluster);
    assert!(!c.redis_target().is_cluster());

    // A list of seeds is a cluster; daemons get every seed without the
    // cloud's password.
    let mut pairs = BASE.to_vec();
    pairs.push((
        "REDIS_URL",
        "redis://admin:hunter2@r1:7000, redis://admin:hunter2@r2:7001",
    ));
    let c = Config::from_pairs(pairs).unwrap();
    assert!(c.redis_target().is_cluster());
    assert_eq!(c.public_redis_url, "redis://r1:7000,redis://r2:7001");
    assert!(!c.redis_url_redacted().contains("hunter2"));
    assert!(!format!("{c:?}").contains("hunter2"));

    // One seed with REDIS_CLUSTER=true: the daemon is told it is a cluster.
    let mut pairs = BASE.to_vec();
    pairs.push(("REDIS_URL", "redis://admin:hunter2@r1:7000"));
    pairs.push(("REDIS_CLUSTER", "true"));
    let c = Config::from_pairs(pairs).unwrap();
    assert!(c.redis_cluster);
    assert!(c.redis_target().is_cluster());
    assert_eq!(c.public_redis_url, "redis://r1:7000?cluster=true");
}

#[test]
fn a_bad_redis_url_names_the_setting_and_hides_the_password() {
    let mut pairs = BASE.to_vec();
    pairs.push(("REDIS_URL", "redis://a:hunter2@r1:7000,nope://a:hunter2@r2"));
    let err = Config::from_pairs(pairs).unwrap_err().to_string();
    assert!(err.contains("REDIS_URL is invalid"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let mut pairs = BASE.to_vec();
    pairs.push(("REDIS_CLUSTER", "maybe"));
    let err = Config::from_pairs(pairs).unwrap_err().to_string();
    assert!(err.contains("REDIS_CLUSTER"), "{err}");
}
