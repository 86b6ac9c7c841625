//! `remoteagentctl service`, completions and man pages: the unit it would
//! install, checked by systemd's own verifier, and the daemon started exactly
//! as the unit's `ExecStart` says, telling a notify socket we own that it is
//! ready.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `service install --print` output split into (path, unit text, commands).
fn printed_install(home: &Home) -> (String, String, Vec<String>) {
    let out = home.ctl(&["service", "install", "--print"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let first = lines.next().unwrap();
    let path = first
        .strip_prefix("# would write ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let mut unit = String::new();
    let mut commands = Vec::new();
    for line in lines {
        if let Some(cmd) = line.strip_prefix("# would run: ") {
            commands.push(cmd.to_string());
        } else {
            unit.push_str(line);
            unit.push('\n');
        }
    }
    (path, unit, commands)
}

fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_string()
}

#[test]
fn install_print_shows_the_unit_and_the_commands_and_changes_nothing() {
    let home = Home::new();
    let (path, unit, commands) = printed_install(&home);
    let expected = format!(
        "{}/config/systemd/user/remoteagentd.service",
        home.path().display()
    );
    assert_eq!(path, expected);
    assert!(
        !std::path::Path::new(&path).exists(),
        "--print wrote the unit"
    );
    assert_eq!(
        commands,
        vec![
            "systemctl --user daemon-reload".to_string(),
            "systemctl --user enable --now remoteagentd.service".to_string()
        ]
    );
    assert_eq!(unit_value(&unit, "Type"), "notify");
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");
    assert_eq!(
        unit_value(&unit, "ExecStart"),
        format!("\"{}\"", daemon_bin().display())
    );
    assert!(!unit.contains('@'), "placeholders left: {unit}");

    let out = home.ctl(&["service", "uninstall", "--print"]);
    assert!(stdout(&out).contains("# would remove "), "{}", stdout(&out));
    assert!(stdout(&out).contains("systemctl --user disable --now remoteagentd.service"));
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let home = Home::new();
    let (_, unit, _) = printed_install(&home);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remoteagentd.service");
    std::fs::write(&file, &unit).unwrap();
    // --man=no: the man page is installed by packages, not on this machine.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .expect("systemd-analyze (scripts/install-test-deps installs it)");
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cloud's unit as `service install --cloud --print` renders it, with
/// a `remoteagent-cloud` to run (the built one beside remoteagentctl, else a
/// stand-in on the home's PATH).
fn printed_cloud_unit(home: &Home) -> (String, String) {
    if !ctl_bin().with_file_name("remoteagent-cloud").exists() {
        let path = home.path().join("bin/remoteagent-cloud");
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = home.ctl(&["service", "install", "--cloud", "--print"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let path = lines
        .next()
        .and_then(|l| l.strip_prefix("# would write "))
        .unwrap_or_else(|| panic!("{text}"))
        .to_string();
    let unit: String = lines
        .filter(|l| !l.starts_with("# would run: "))
        .map(|l| format!("{l}\n"))
        .collect();
    (path, unit)
}

#[test]
fn the_cloud_unit_runs_serve_with_its_config_and_passes_systemd_analyze_verify() {
    let home = Home::new();
    let (path, unit) = printed_cloud_unit(&home);
    assert_eq!(
        path,
        format!(
            "{}/config/systemd/user/remoteagent-cloud.service",
            home.path().display()
        )
    );
    let exec = unit_value(&unit, "ExecStart");
    let config = home.path().join("config/remoteagent/cloud.toml");
    assert!(
        exec.ends_with(&format!("\" --config \"{}\" serve", config.display())),
        "{exec}"
    );
    assert!(exec.contains("/remoteagent-cloud\""), "{exec}");
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");
    assert_eq!(unit_value(&unit, "UMask"), "0077");
    assert_eq!(unit_value(&unit, "WantedBy"), "default.target");
    assert!(!unit.contains('@'), "placeholders left: {unit}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remoteagent-cloud.service");
    std::fs::write(&file, &unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .expect("systemd-analyze (scripts/install-test-deps installs it)");
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_daemon_started_as_execstart_says_notifies_ready_then_stopping() {
    let home = Home::new();
    home.write_config("secret_store = \"file\"\n");
    let (_, unit, _) = printed_install(&home);
    let exec = unit_value(&unit, "ExecStart");
    let exec = exec.trim_matches('"');
    let path_env = unit_value(&unit, "Environment");
    let path_env = path_env
        .trim_matches('"')
        .strip_prefix("PATH=")
        .unwrap()
        .replace("%%", "%");

    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    let mut child = Command::new(exec)
        .envs(&home.env)
        .env("PATH", path_env)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 within 30 s");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "got {msg:?}");
    // READY came after the socket accepts: the CLI gets an answer at once.
    let out = home.ctl(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let n = notify.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "STOPPING=1"), "got {msg:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "daemon did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn without_systemctl_install_fails_with_a_clear_message() {
    let home = Home::new();
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(ctl_bin())
        .envs(&home.env)
        .env("PATH", empty.path())
        .args(["service", "install"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("systemctl was not found"), "{err}");
    assert!(err.contains("remoteagentd --daemonize"), "{err}");
    assert!(
        !home
            .path()
            .join("config/systemd/user/remoteagentd.service")
            .exists(),
        "a unit was written although nothing can load it"
    );
}

#[test]
fn completions_and_man_pages_are_generated_from_the_cli() {
    let home = Home::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = home.ctl(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains("remoteagentctl"), "{shell}");
        assert!(
            script.contains("unpair"),
            "{shell} completion lacks subcommands"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = home.ctl(&["man", "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let main = std::fs::read_to_string(dir.path().join("remoteagentctl.1")).unwrap();
    assert!(main.starts_with(".ie") || main.contains(".TH"), "{main}");
    assert!(main.contains("pair"));
    assert!(dir.path().join("remoteagentctl-pair.1").exists());
}
