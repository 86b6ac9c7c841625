//! Reading `remoteagentctl --json doctor`, and the breakage both doctor
//! tests cause: the agent's Redis user deleted.

use std::process::Output;

use serde_json::Value;

/// `doctor --json`'s exit code and report, from its output.
pub fn report(out: &Output) -> (Option<i32>, Value) {
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// The check whose name starts with `name`: (status, detail, fix).
pub fn check(report: &Value, name: &str) -> (String, String, String) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with(name))
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"));
    let text = |k: &str| c[k].as_str().unwrap_or("").to_string();
    (text("status"), text("detail"), text("fix"))
}

/// Deletes the (one) agent's ACL user on the Redis at `url`, as an admin
/// who removed it by mistake would.
pub async fn delete_agent_acl_user(url: &str) {
    let mut admin = remoteagent_testkit::redis_conn(url).await;
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut admin)
        .await
        .unwrap();
    let agent_user = users
        .iter()
        .find(|u| u.starts_with("ra-agent-"))
        .unwrap_or_else(|| panic!("no agent user in {users:?}"));
    let _: i64 = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(agent_user)
        .query_async(&mut admin)
        .await
        .unwrap();
}
