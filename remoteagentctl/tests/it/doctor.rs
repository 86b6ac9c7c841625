//! `remoteagentctl doctor` against the real daemon binary in a temporary
//! home, a private Redis and a fake cloud: each problem is a ✖ with its fix,
//! and the exit code says whether anything failed.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use common::*;
use remoteagent_testkit::RedisServer;

fn doctor_json(home: &Home) -> (Option<i32>, serde_json::Value) {
    let out = home.ctl(&["--json", "doctor"]);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    (out.status.code(), v)
}

/// The check named `name`: its status and its fix.
fn check(report: &serde_json::Value, name: &str) -> (String, String, String) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"));
    (
        c["status"].as_str().unwrap().to_string(),
        c["detail"].as_str().unwrap_or("").to_string(),
        c["fix"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_daemon_it_says_how_to_start_one() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    let out = home.ctl(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("✖ daemon:"), "{text}");
    assert!(text.contains("fix: start it"), "{text}");
    assert!(
        stderr(&out).contains(" failed; each ✖ says how to fix it"),
        "{}",
        stderr(&out)
    );

    let (code, report) = doctor_json(&home);
    assert_eq!(code, Some(1));
    assert_eq!(report["ok"], false);
    let (status, _, fix) = check(&report, "daemon");
    assert_eq!(status, "fail");
    assert!(fix.contains("remoteagentd --daemonize"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_broken_part_is_named_with_its_fix() {
    let mut redis = RedisServer::start().unwrap();
    let cloud = FakeCloud::start(redis.url()).await;
    let home = Arc::new(Home::with_file_store(&cloud.url));
    let h = home.clone();
    let _daemon = blocking(move || h.start_daemon()).await;
    let project = home.project("tool");
    pair_project(
        &home,
        &cloud,
        &project,
        "tool",
        &["--command", "./my-agent"],
    )
    .await;

    let (code, report) = doctor_json(&home);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(check(&report, "daemon").0, "ok");
    assert_eq!(check(&report, "daemon config").0, "ok");
    assert_eq!(check(&report, "secret store").0, "ok");
    assert_eq!(check(&report, "redis login of tool").0, "ok", "{report:#}");
    // The runner is not there: named, with the fix.
    let (status, detail, fix) = check(&report, "runner of tool");
    assert_eq!(status, "fail");
    assert!(detail.contains("./my-agent"), "{detail}");
    assert!(fix.contains("--command"), "{fix}");
    // The fake cloud is not a RemoteAgent cloud (no `/healthz`).
    let (status, detail, _) = check(&report, &format!("cloud {}", cloud.url));
    assert_eq!(status, "fail");
    assert!(detail.contains("not as a RemoteAgent cloud"), "{detail}");

    // With the runner in place, that line turns ✔.
    let runner = project.join("my-agent");
    std::fs::write(&runner, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(check(&doctor_json(&home).1, "runner of tool").0, "ok");

    // A config file broken since the daemon started: its next start would fail.
    home.write_config("secret_store = \"file\"\ncloud_url = [\n");
    let (status, detail, fix) = check(&doctor_json(&home).1, "daemon config");
    assert_eq!(status, "fail");
    assert!(detail.contains("config.toml"), "{detail}");
    assert!(fix.contains("remoteagentctl reload"), "{fix}");

    // Redis gone: the agent's login fails, with what to start.
    redis.stop();
    let (status, detail, fix) = check(&doctor_json(&home).1, "redis login of tool");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("cannot be reached") || detail.contains("did not answer"),
        "{detail}"
    );
    assert!(fix.contains("Redis"), "{fix}");
}
