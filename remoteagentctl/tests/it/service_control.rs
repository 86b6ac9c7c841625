//! `remoteagentctl service status | start | stop | restart` and `restart`
//! with the real binaries in a temporary home: without a service manager
//! (how this sandbox is: `systemctl --user` cannot reach a bus) they start
//! and stop the real daemon directly; with one (a stand-in `systemctl` on
//! the home's PATH that keeps each unit's state in a file) they go through
//! it and say so. Each `systemctl` here is found on PATH and really run:
//! nothing in remoteagentctl is told which case it is in.

use crate::common;

use std::path::PathBuf;

use common::*;

fn no_user_session(home: &Home) {
    home.without_user_session();
}

/// The stand-in `systemctl` with a user session (`testkit::home`).
fn user_session(home: &Home) -> PathBuf {
    home.with_user_session()
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

/// The pid the running daemon reports (`remoteagentctl --json status`).
fn daemon_pid(home: &Home) -> u64 {
    let out = home.ctl(&["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    json_of(&out)["pid"].as_u64().unwrap()
}

/// The number after "pid " in `text` (the first, or after "→ ").
fn pid_in(text: &str, after: &str) -> u64 {
    let rest = text
        .split(after)
        .nth(1)
        .unwrap_or_else(|| panic!("no {after:?} in {text:?}"));
    rest.trim_start_matches("pid ")
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// Stops a daemon a failed test left running (`service stop` talks to it
/// directly), so no daemon outlives its home.
struct StopOnDrop<'a>(&'a Home);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.socket().exists() {
            let _ = self.0.ctl(&["service", "stop"]);
        }
    }
}

fn log_of(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("state/remoteagent/remoteagentd.log"))
        .unwrap_or_default()
}

#[test]
fn status_without_a_service_manager_exits_1_in_words_and_json() {
    let home = Home::new();
    no_user_session(&home);
    let out = home.ctl(&["service", "status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("remoteagentd.service: unknown: no service manager to ask"),
        "{text}"
    );
    assert!(text.contains("Failed to connect to bus"), "{text}");
    assert!(text.contains("remoteagentd is not running"), "{text}");

    let out = home.ctl(&["--json", "service", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["ok"], false);
    let units = v["units"].as_array().unwrap();
    assert_eq!(units.len(), 1, "{v:#}");
    let u = &units[0];
    assert_eq!(u["unit"], "remoteagentd.service");
    assert_eq!(u["installed"], false);
    assert_eq!(u["active"], "unknown");
    assert_eq!(u["manager"]["name"], "systemd");
    assert_eq!(u["manager"]["available"], false);
    assert!(
        u["manager"]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot reach a user session"),
        "{v:#}"
    );
    assert_eq!(
        u["path"].as_str().unwrap(),
        home.path()
            .join("config/systemd/user/remoteagentd.service")
            .to_str()
            .unwrap()
    );
    assert!(u["process"].is_null());

    // No systemctl at all: the same answer, another reason.
    let bare = tempfile::tempdir().unwrap();
    let out = home
        .command(&ctl_bin())
        .env("PATH", bare.path())
        .args(["--json", "service", "status", "--cloud"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["units"][0]["unit"], "remoteagent-cloud.service");
    assert!(
        v["units"][0]["manager"]["reason"]
            .as_str()
            .unwrap()
            .contains("systemctl was not found"),
        "{v:#}"
    );
}

#[test]
fn status_json_error_when_the_environment_is_unusable() {
    let home = Home::new();
    let out = home
        .command(&ctl_bin())
        .env_remove("HOME")
        .args(["--json", "service", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stderr).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(v["error"]["exit"], 1);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("HOME"),
        "{v}"
    );
}

#[test]
fn without_a_service_manager_start_stop_restart_run_the_real_daemon_directly() {
    let home = Home::with_config("secret_store = \"file\"\n");
    no_user_session(&home);
    let _stop = StopOnDrop(&home);

    let out = home.ctl(&["service", "start"]);
    assert!(out.status.success(), "{}{}", stderr(&out), log_of(&home));
    let text = stdout(&out);
    assert!(
        text.contains("no service manager: started remoteagentd (pid "),
        "{text}"
    );
    assert!(text.contains("Failed to connect to bus"), "{text}");
    // `--daemonize` returned only once the daemon served: it answers now.
    assert!(home.socket().exists());
    let first = daemon_pid(&home);
    assert_eq!(pid_in(&text, "started remoteagentd ("), first);

    let out = home.ctl(&["service", "start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("remoteagentd is already running (pid {first})")),
        "{}",
        stdout(&out)
    );

    // Running, but not under a service manager: status says both, exits 1.
    let out = home.ctl(&["--json", "service", "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out)["units"][0]["process"]["pid"], first);

    let out = home.ctl(&["restart"]);
    assert!(out.status.success(), "{}{}", stderr(&out), log_of(&home));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "no service manager: restarted remoteagentd (pid {first} → pid "
        )),
        "{text}"
    );
    let second = daemon_pid(&home);
    assert_ne!(second, first, "{text}");
    assert_eq!(pid_in(&text, "→ "), second);

    let out = home.ctl(&["--json", "service", "stop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["via"], "direct");
    assert_eq!(v["why"], "no service manager");
    assert_eq!(v["old_pid"], second);
    // Stopped means its socket is gone and nothing answers.
    assert!(!home.socket().exists());
    assert_eq!(home.ctl(&["status"]).status.code(), Some(3));

    let out = home.ctl(&["service", "stop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("remoteagentd is not running"),
        "{}",
        stdout(&out)
    );

    // Restart of a stopped daemon starts it.
    let out = home.ctl(&["service", "restart"]);
    assert!(out.status.success(), "{}{}", stderr(&out), log_of(&home));
    assert!(
        stdout(&out).contains("remoteagentd was not running; started it (pid "),
        "{}",
        stdout(&out)
    );
    assert!(home.daemon_answers());
    let out = home.ctl(&["service", "stop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!home.socket().exists());
}

#[test]
fn a_failed_direct_start_says_why() {
    let home = Home::with_config("this is = not toml [\n");
    no_user_session(&home);
    let out = home.ctl(&["service", "start"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("--daemonize` failed"), "{err}");
    assert!(err.contains("config"), "{err}");
    assert!(!home.socket().exists());
}

#[test]
fn print_of_each_subcommand_without_a_service_manager_changes_nothing() {
    let home = Home::new();
    no_user_session(&home);
    let daemon = daemon_bin();
    let unit_dir = home.path().join("config/systemd/user");
    let expect: &[(&[&str], &[&str])] = &[
        (
            &["service", "install", "--print"],
            &[
                "# would write ",
                "ExecStart=",
                "# would run: systemctl --user enable --now remoteagentd.service",
            ],
        ),
        (
            &["service", "uninstall", "--print"],
            &[
                "# would run: systemctl --user disable --now remoteagentd.service",
                "# would remove ",
            ],
        ),
        (
            &["service", "status", "--print"],
            &[
                "# would run: systemctl --user show --property=LoadState,ActiveState,FragmentPath remoteagentd.service",
                "# and, when remoteagent-cloud.service is installed:",
            ],
        ),
        (
            &["service", "start", "--print"],
            &[
                "# no service manager: remoteagentd would be started directly",
                "Failed to connect to bus",
                &format!("# would run: {} --daemonize", daemon.display()),
            ],
        ),
        (
            &["service", "stop", "--print"],
            &["# remoteagentd is not running (nothing answers on "],
        ),
        (
            &["service", "--print", "restart"],
            &[
                "# no service manager: remoteagentd would be restarted directly",
                "nothing to stop",
                &format!("# would run: {} --daemonize", daemon.display()),
            ],
        ),
        (
            &["restart", "--print"],
            &["# no service manager: remoteagentd would be restarted directly"],
        ),
        (
            &["service", "install", "--cloud", "--print"],
            &[
                "remoteagent-cloud.service\n",
                " serve\n",
                "# would run: systemctl --user enable --now remoteagent-cloud.service",
            ],
        ),
        (
            &["service", "uninstall", "--cloud", "--print"],
            &["# would run: systemctl --user disable --now remoteagent-cloud.service"],
        ),
        (
            &["service", "status", "--cloud", "--print"],
            &["--property=LoadState,ActiveState,FragmentPath remoteagent-cloud.service"],
        ),
    ];
    for (args, wanted) in expect {
        let out = home.ctl(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        for w in *wanted {
            assert!(text.contains(w), "{args:?}: no {w:?} in\n{text}");
        }
    }
    // The cloud is never started directly, and says so (also in --print).
    for action in ["start", "stop", "restart"] {
        let out = home.ctl(&["service", action, "--cloud", "--print"]);
        assert_eq!(out.status.code(), Some(1), "{action}");
        assert!(
            stderr(&out).contains("remoteagent-cloud is ") && stderr(&out).contains(" serve`"),
            "{action}: {}",
            stderr(&out)
        );
    }
    assert!(!unit_dir.exists(), "--print wrote a unit");
    assert!(!home.socket().exists(), "--print started the daemon");
}

#[test]
fn with_a_service_manager_the_commands_go_through_it_and_say_so() {
    let home = Home::new();
    let fake = user_session(&home);
    let calls = || std::fs::read_to_string(fake.join("calls")).unwrap_or_default();

    // Not installed: status says so and exits 1; start goes directly (and
    // here fails: the daemon is not configured to start, which is fine —
    // only the choice of way is looked at, through --print).
    let out = home.ctl(&["--json", "service", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["units"][0]["installed"], false);
    assert_eq!(v["units"][0]["manager"]["available"], true);
    let out = home.ctl(&["service", "start", "--print"]);
    assert!(
        stdout(&out).contains(
            "# remoteagentd.service is not installed: remoteagentd would be started directly"
        ),
        "{}",
        stdout(&out)
    );

    // Installed (systemd loaded it) and inactive.
    std::fs::write(fake.join("state/remoteagentd.service"), "inactive\n").unwrap();
    let out = home.ctl(&["service", "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("remoteagentd.service: inactive (systemd, "),
        "{}",
        stdout(&out)
    );
    let out = home.ctl(&["service", "start", "--print"]);
    assert!(
        stdout(&out).contains("# would run: systemctl --user start remoteagentd.service"),
        "{}",
        stdout(&out)
    );
    assert!(!calls().contains("--user start"), "--print started it");

    let out = home.ctl(&["restart"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "restarted remoteagentd.service via systemd"
    );
    assert!(
        calls().contains("--user restart remoteagentd.service\n"),
        "{}",
        calls()
    );

    let out = home.ctl(&["--json", "service", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v = json_of(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["units"][0]["active"], "active");
    assert_eq!(v["units"][0]["installed"], true);
    assert_eq!(
        v["units"][0]["path"].as_str().unwrap(),
        fake.join("remoteagentd.service").to_str().unwrap()
    );
    assert_eq!(
        v["units"].as_array().unwrap().len(),
        1,
        "cloud not installed"
    );

    // The cloud's unit installed but failed: status shows both, exits 1.
    std::fs::write(fake.join("state/remoteagent-cloud.service"), "failed\n").unwrap();
    let out = home.ctl(&["service", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("remoteagentd.service: active"), "{text}");
    assert!(text.contains("remoteagent-cloud.service: failed"), "{text}");
    // Doctor: the daemon's unit ✔, the cloud's ✖ with its fix.
    let out = home.ctl(&["--json", "doctor"]);
    let report = json_of(&out);
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report:#}"))
            .clone()
    };
    assert_eq!(check("login service")["status"], "ok");
    let cloud = check("login service (cloud)");
    assert_eq!(cloud["status"], "fail");
    assert_eq!(
        cloud["detail"],
        "remoteagent-cloud.service is installed but failed"
    );
    assert!(
        cloud["fix"]
            .as_str()
            .unwrap()
            .starts_with("remoteagentctl service restart --cloud"),
        "{cloud}"
    );

    let out = home.ctl(&["service", "restart", "--cloud"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "restarted remoteagent-cloud.service via systemd"
    );
    let out = home.ctl(&["service", "stop"]);
    assert_eq!(
        stdout(&out).trim(),
        "stopped remoteagentd.service via systemd"
    );
    let out = home.ctl(&["--json", "service", "status", "--cloud"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        json_of(&out)["units"][0]["unit"],
        "remoteagent-cloud.service"
    );
}

#[test]
fn doctor_warns_without_a_service_manager_and_says_why() {
    let home = Home::new();
    no_user_session(&home);
    let out = home.ctl(&["--json", "doctor"]);
    let report = json_of(&out);
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "login service")
        .unwrap_or_else(|| panic!("{report:#}"))
        .clone();
    assert_eq!(c["status"], "warn", "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.starts_with("no service manager: "), "{detail}");
    assert!(detail.contains("Failed to connect to bus"), "{detail}");
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("remoteagentctl service start"),
        "{c}"
    );
    assert!(
        !report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "login service (cloud)"),
        "{report:#}"
    );
}
