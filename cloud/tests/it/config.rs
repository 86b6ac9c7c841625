//! The binary's configuration errors, as an operator meets them: every
//! missing setting in one line, an unknown key of the config file refused
//! by name and position, a bad value pointed at, and `--help` listing every
//! setting without showing a secret.

use std::process::{Command, Output};

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_remoteagent-cloud"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs `cmd`, expecting it to fail; returns its stderr.
fn fails(mut cmd: Command) -> String {
    let out: Output = cmd.output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn every_missing_setting_is_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = binary();
    cmd.env("REMOTEAGENT_DATA_DIR", dir.path())
        .env("TELEGRAM_MODE", "webhook")
        .env("TRIAL_DAYS", "soon")
        .arg("serve");
    let stderr = fails(cmd);
    assert!(
        stderr.contains(
            "TELEGRAM_BOT_TOKEN, PUBLIC_URL, TELEGRAM_WEBHOOK_SECRET are not set \
             (set them in the environment or the config file)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("TRIAL_DAYS is invalid"), "{stderr}");
    // A variable that is not text is named too.
    let mut cmd = binary();
    cmd.env("REMOTEAGENT_DATA_DIR", dir.path())
        .env(
            "TRIAL_DAYS",
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff"),
        )
        .arg("serve");
    let stderr = fails(cmd);
    assert!(
        stderr.contains("TRIAL_DAYS is invalid: not valid UTF-8"),
        "{stderr}"
    );
    // Poll mode (no PUBLIC_URL) needs the token only.
    let mut cmd = binary();
    cmd.env("REMOTEAGENT_DATA_DIR", dir.path()).arg("serve");
    let stderr = fails(cmd);
    assert!(stderr.contains("TELEGRAM_BOT_TOKEN is not set"), "{stderr}");
    assert!(!stderr.contains("PUBLIC_URL"), "{stderr}");
}

#[test]
fn the_config_file_refuses_unknown_keys_and_points_at_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloud.toml");
    std::fs::write(
        &file,
        "telegram_bot_token = \"1:x\"\nredis_ulr = \"redis://r:1\"\n",
    )
    .unwrap();
    let mut cmd = binary();
    cmd.env("REMOTEAGENT_DATA_DIR", dir.path())
        .arg("--config")
        .arg(&file)
        .arg("serve");
    let stderr = fails(cmd);
    assert!(
        stderr.contains("unknown key `redis_ulr` at line 2, column 1"),
        "{stderr}"
    );
    // The same file through REMOTEAGENT_CONFIG; the value is bad this time.
    std::fs::write(
        &file,
        "telegram_bot_token = \"1:x\"\nFORWARDER_MAX_PAGES = \"none\"\n",
    )
    .unwrap();
    let mut cmd = binary();
    cmd.env("REMOTEAGENT_DATA_DIR", dir.path())
        .env("REMOTEAGENT_CONFIG", &file)
        .arg("serve");
    let stderr = fails(cmd);
    assert!(
        stderr.contains("FORWARDER_MAX_PAGES is invalid"),
        "{stderr}"
    );
    assert!(stderr.contains("line 2, column 23"), "{stderr}");
    // The environment wins over the file.
    let mut cmd = binary();
    cmd.env("REMOTEAGENT_DATA_DIR", dir.path())
        .env("REMOTEAGENT_CONFIG", &file)
        .env("FORWARDER_MAX_PAGES", "0")
        .arg("serve");
    let stderr = fails(cmd);
    assert!(
        stderr.contains("FORWARDER_MAX_PAGES is invalid: must be at least 1"),
        "{stderr}"
    );
    assert!(!stderr.contains("line 2"), "{stderr}");
}

#[test]
fn help_lists_every_setting_and_no_secret() {
    let out = binary()
        .env("TELEGRAM_BOT_TOKEN", "123:very-secret-token")
        .env("REMOTEAGENT_CONFIG", "/nonexistent.toml")
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for setting in remoteagent_cloud::config::SETTINGS {
        assert!(
            help.contains(setting.name),
            "{} missing:\n{help}",
            setting.name
        );
    }
    assert!(help.contains("delete-webhook"), "{help}");
    assert!(!help.contains("very-secret-token"), "{help}");
}
