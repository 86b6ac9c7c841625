//! Reloading the daemon's config: SIGHUP and `remoteagentctl reload`
//! against the real daemon in a temporary home. A good file is put in
//! force (`status` shows the new cloud), a broken one is refused with its
//! line and key, the old config kept, and `status` and `doctor` say so;
//! `secret_store` waits for a restart.

use crate::common;

use std::time::Instant;

use common::*;
use nix::sys::signal::Signal;

/// `remoteagentctl --json status`, parsed.
fn status(home: &Home) -> serde_json::Value {
    let out = home.ctl(&["--json", "status"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&out), stderr(&out)))
}

/// Polls `status` until `done` holds (a hang guard, not a timing claim).
fn wait_status(
    home: &Home,
    daemon: &Daemon,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = status(home);
        if done(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened; status {s:#}\n{}",
            daemon.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn doctor_config_check(home: &Home) -> serde_json::Value {
    let out = home.ctl(&["--json", "doctor"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "daemon config")
        .unwrap_or_else(|| panic!("no daemon config check in {report:#}"))
        .clone()
}

#[test]
fn sighup_applies_a_new_cloud_url_and_keeps_the_old_config_on_a_broken_file() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    let daemon = home.start_daemon();
    assert_eq!(status(&home)["cloud_url"], "http://127.0.0.1:9");

    home.write_config("secret_store = \"file\"\ncloud_url = \"http://127.0.0.1:19\"\n");
    daemon.signal(Signal::SIGHUP);
    wait_status(&home, &daemon, "the new cloud_url in force", |s| {
        s["cloud_url"] == "http://127.0.0.1:19"
    });
    assert!(status(&home)["config_problem"].is_null());

    // A broken file: refused, the previous config kept, said everywhere.
    home.write_config(
        "secret_store = \"file\"\ncloud_url = \"http://127.0.0.1:29\"\n[logs]\nmax_log_mb = \"big\"\n",
    );
    daemon.signal(Signal::SIGHUP);
    wait_status(&home, &daemon, "the reload failure in status", |s| {
        s["config_problem"].is_string()
    });
    let s = status(&home);
    assert_eq!(
        s["cloud_url"], "http://127.0.0.1:19",
        "the old config stays"
    );
    let problem = s["config_problem"].as_str().unwrap();
    assert!(problem.starts_with("config reload failed at "), "{problem}");
    assert!(problem.contains("config.toml"), "{problem}");
    assert!(
        problem.contains("line 4") && problem.contains("logs.max_log_mb"),
        "{problem}"
    );
    let text = stdout(&home.ctl(&["status"]));
    assert!(
        text.contains("config:   config reload failed at "),
        "{text}"
    );
    assert!(text.contains("cloud:    http://127.0.0.1:19"), "{text}");
    let log = daemon.log_text();
    assert!(
        log.contains("config reload failed") && log.contains("logs.max_log_mb"),
        "{log}"
    );
    let check = doctor_config_check(&home);
    assert_eq!(check["status"], "fail", "{check:#}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("config reload failed at"),
        "{check:#}"
    );
    assert!(
        check["fix"]
            .as_str()
            .unwrap()
            .contains("remoteagentctl reload"),
        "{check:#}"
    );

    // `remoteagentctl reload` says the same, as an error.
    let out = home.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("keeps its previous config"),
        "{}",
        stderr(&out)
    );

    // Fixed, with a key that needs a restart: applied but for that key.
    home.write_config("secret_store = \"keyring\"\ncloud_url = \"http://127.0.0.1:39\"\n");
    let out = home.ctl(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("now in force: cloud_url"), "{said}");
    assert!(
        said.contains("secret_store changed; takes effect after a restart"),
        "{said}"
    );
    let s = status(&home);
    assert_eq!(s["cloud_url"], "http://127.0.0.1:39");
    assert!(s["config_problem"].is_null(), "{s:#}");
    assert_eq!(s["restart_needed"], serde_json::json!(["secret_store"]));
    let check = doctor_config_check(&home);
    assert_eq!(check["status"], "warn", "{check:#}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("takes effect after a restart"),
        "{check:#}"
    );
}

/// A setting read per session reaches an agent that is already running:
/// the same prompt runs before the reload and is refused after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_agent_takes_a_reloaded_setting_at_its_next_session() {
    use remoteagent_proto::SessionId;
    use remoteagent_proto::events::{DoneStatus, OutputEvent};

    let s = Paired::start("web", "echo ran\n", 30 * 24 * 3600, |_| {}).await;
    let prompt = "a prompt of twenty-six bytes";
    let first = SessionId::generate();
    s.publish(&s.sign(&first, prompt, 60)).await;
    assert_eq!(s.wait_status(&first).await, DoneStatus::Ok);

    s.home.add_config("max_prompt_bytes = 10");
    let home = s.home.clone();
    let out = blocking(move || home.ctl(&["reload"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("max_prompt_bytes"),
        "{}",
        stdout(&out)
    );

    let second = SessionId::generate();
    s.publish(&s.sign(&second, prompt, 60)).await;
    assert_eq!(s.wait_status(&second).await, DoneStatus::Rejected);
    // A refusal says why once, in its `done`.
    let notice = s.events(&second).await.into_iter().find_map(|e| match e {
        OutputEvent::Done(d) => d.message,
        _ => None,
    });
    assert!(
        notice
            .as_deref()
            .is_some_and(|n| n.contains("the limit is 10")),
        "{notice:?}\n{}",
        s.daemon.log_text()
    );
}
