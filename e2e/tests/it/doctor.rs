//! `remoteagentctl doctor` against the real cloud, daemon and Redis (with
//! the agent's ACL user): every part ✔ after pairing through the deep link,
//! then each breakage a ✖ with the fix that belongs to it — the cloud
//! stopped, the agent's Redis user deleted, Redis stopped.

use std::time::Duration;

use remoteagent_e2e::doctor::{check, delete_agent_acl_user, report};
use remoteagent_e2e::{Home, Stack, fixture};
use remoteagent_testkit::wait_for;

const OWNER: i64 = 4004;
const WAIT: Duration = Duration::from_secs(30);

/// `doctor --json`: its exit code and its report.
fn doctor(home: &Home) -> (Option<i32>, serde_json::Value) {
    report(&home.ctl(&["--json", "doctor"]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_sees_each_part_and_names_the_fix_when_one_breaks() {
    let mut s = Stack::start().await.unwrap();

    // Paired through the deep link `pair` prints (the bot's `/start CODE`).
    let project = s.home.project("app").unwrap();
    let runner = fixture("answer.sh");
    let (mut ctl, code) = s
        .home
        .start_pairing(
            "pair-app",
            &project,
            &["--command", runner.to_str().unwrap()],
        )
        .await;
    let deep_link = format!("?start={code}");
    assert!(ctl.output().contains(&deep_link), "{}", ctl.output());
    s.cloud.say(OWNER, &format!("/start {code}")).await;
    assert_eq!(ctl.wait(WAIT).await.unwrap(), Some(0), "{}", ctl.output());

    // Everything works: no ✖, exit 0 (the login service is only a warning
    // here, where no service manager runs the daemon).
    let (exit, report) = doctor(&s.home);
    for c in report["checks"].as_array().unwrap() {
        assert_ne!(c["status"], "fail", "{c:#}\n{}", s.logs());
    }
    assert_eq!(exit, Some(0), "{report:#}");
    for name in [
        "daemon",
        "daemon config",
        "secret store",
        "cloud ",
        "redis login of app",
        "runner of app",
    ] {
        assert_eq!(check(&report, name).0, "ok", "{name}: {report:#}");
    }
    assert!(check(&report, "cloud ").1.contains("RemoteAgent cloud"));

    // The cloud stopped: its line turns ✖ with how to start it, the rest
    // stays ✔ (Redis is still there), and the exit code says so.
    s.cloud.proc.kill();
    let (exit, report) = doctor(&s.home);
    assert_eq!(exit, Some(1), "{report:#}");
    let (status, detail, fix) = check(&report, "cloud ");
    assert_eq!(status, "fail", "{report:#}");
    assert!(detail.contains("cannot reach it"), "{detail}");
    assert!(fix.contains("start the cloud"), "{fix}");
    assert_eq!(check(&report, "redis login of app").0, "ok", "{report:#}");

    // The agent's Redis user deleted (the stopped cloud cannot re-create
    // it): the login is refused, and the fix is to pair again.
    delete_agent_acl_user(&s.redis.url()).await;
    let refused = wait_for(WAIT, || {
        let (_, report) = doctor(&s.home);
        let c = check(&report, "redis login of app");
        async move { (c.0 == "fail").then_some(c) }
    })
    .await;
    let (_, detail, fix) = refused.unwrap_or_else(|| panic!("never refused\n{}", s.logs()));
    assert!(detail.contains("refuses its login"), "{detail}");
    assert!(
        fix.contains("remoteagentctl unpair app") && fix.contains("remoteagentctl pair"),
        "{fix}"
    );

    // Redis stopped: the login cannot even be tried, and the fix is Redis.
    s.redis.stop();
    let (exit, report) = doctor(&s.home);
    assert_eq!(exit, Some(1));
    let (status, detail, fix) = check(&report, "redis login of app");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("cannot be reached") || detail.contains("did not answer"),
        "{detail}"
    );
    assert!(fix.contains("Redis"), "{fix}");
}
