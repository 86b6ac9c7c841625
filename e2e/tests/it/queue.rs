//! The queue while busy, the whole way: the real cloud, daemon and Redis,
//! the fake Bot API, and a runner held until the test lets it go
//! (`gate.sh`: a prompt starting with "hold" waits for a file), so prompts
//! are sent during a run without sleeping. What ran, and in which order, is
//! read from the runner's own record (`prompts.log` in the project).

use std::path::Path;
use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_testkit::telegram::{FakeMessage, updates};
use remoteagent_testkit::{RedisServer, wait_for};

const OWNER: i64 = 1001;
const WAIT: Duration = Duration::from_secs(60);

/// The prompts the runner saw, in order.
fn ran(project: &Path) -> Vec<String> {
    std::fs::read_to_string(project.join("prompts.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn wait_message(
    stack: &Stack,
    what: &str,
    pred: impl Fn(&FakeMessage) -> bool,
) -> FakeMessage {
    let found = wait_for(WAIT, || {
        let hit = stack.tg.messages(OWNER).into_iter().rev().find(|m| pred(m));
        async move { hit }
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "no message {what}; messages: {:#?}\n{}",
            stack.texts(OWNER),
            stack.logs()
        )
    })
}

/// The callback data of `m`'s buttons.
fn buttons(m: &FakeMessage) -> Vec<String> {
    m.reply_markup
        .as_ref()
        .and_then(|k| k.get("inline_keyboard"))
        .and_then(|rows| rows.as_array())
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|b| b.get("callback_data")?.as_str().map(str::to_string))
        .collect()
}

/// Holds a run of `hello` and queues `prompts` behind it; returns the
/// project and each queued prompt's message (1st, 2nd, …).
async fn hold_and_queue(stack: &Stack, prompts: &[&str]) -> (std::path::PathBuf, Vec<FakeMessage>) {
    let project = stack.pair_project(OWNER, "hello", "gate.sh", WAIT).await;
    stack.cloud.say(OWNER, "hold the line").await;
    wait_message(stack, "showing the held run", |m| {
        m.text.contains("started: hold the line")
    })
    .await;
    let mut queued = Vec::new();
    for (i, prompt) in prompts.iter().enumerate() {
        stack.cloud.say(OWNER, prompt).await;
        let place = ["1st", "2nd", "3rd"][i];
        let m = wait_message(stack, &format!("queued {place}"), |m| {
            m.text
                .starts_with(&format!("⏳ queued ({place}) for hello"))
        })
        .await;
        assert_eq!(buttons(&m).len(), 2, "{m:#?}");
        queued.push(m);
    }
    assert_eq!(
        ran(&project),
        ["hold the line"],
        "a queued prompt ran early"
    );
    (project, queued)
}

/// Waits until the runner has seen `expected`, in that order, and its last
/// run's answer is shown.
async fn wait_ran(stack: &Stack, project: &Path, expected: &[&str]) {
    let last = expected.last().unwrap();
    wait_message(stack, "with the last answer", |m| {
        m.text.contains(&format!("answered: {last}"))
    })
    .await;
    assert_eq!(ran(project), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_prompts_sent_during_a_run_run_in_order() {
    let stack = Stack::start().await.unwrap();
    let (project, queued) = hold_and_queue(&stack, &["one", "two", "three"]).await;
    std::fs::write(project.join("release"), "").unwrap();
    wait_ran(&stack, &project, &["hold the line", "one", "two", "three"]).await;
    // Each queued message says its prompt ran, and has no buttons left.
    for m in &queued {
        let now = stack.tg.message(OWNER, m.message_id).unwrap();
        assert!(
            now.text
                .starts_with("▶ your queued prompt runs now on hello"),
            "{now:#?}"
        );
        assert!(now.reply_markup.is_none(), "{now:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_removes_one() {
    let stack = Stack::start().await.unwrap();
    let (project, queued) = hold_and_queue(&stack, &["one", "two", "three"]).await;
    let cancel = buttons(&queued[1])[1].clone();
    assert!(cancel.starts_with("queue:cancel:"), "{cancel}");
    let press = updates::callback(
        stack.cloud.update_id(),
        OWNER,
        OWNER,
        queued[1].message_id,
        &cancel,
    );
    stack.cloud.deliver(&press).await;
    wait_message(&stack, "saying two was cancelled", |m| {
        m.message_id == queued[1].message_id
            && m.text == "✖ cancelled: “two” will not run on hello."
    })
    .await;
    std::fs::write(project.join("release"), "").unwrap();
    wait_ran(&stack, &project, &["hold the line", "one", "three"]).await;
}

/// The queue is in the database: after the cloud is killed and started
/// again mid-run, the queued prompt runs when the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_prompt_survives_a_cloud_restart() {
    let mut stack = Stack::start_on(RedisServer::start().unwrap(), None, "")
        .await
        .unwrap();
    let (project, _) = hold_and_queue(&stack, &["after the restart"]).await;
    stack.cloud.crash_and_restart().await.unwrap();
    std::fs::write(project.join("release"), "").unwrap();
    wait_ran(&stack, &project, &["hold the line", "after the restart"]).await;
}
