//! Worktrees for parallel runs, the whole way: the real cloud, daemon,
//! Redis and git, the fake Bot API. Two prompts sent while `hello` (with
//! `worktrees = true`) is busy are not queued: both start at once, each in
//! its own worktree, each output in its own message; `remoteagentctl
//! worktrees` lists them and `/clean` removes them, keeping the branches.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_testkit::telegram::FakeMessage;
use remoteagent_testkit::wait_for;

const OWNER: i64 = 1001;
const WAIT: Duration = Duration::from_secs(60);

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

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prompts_to_a_busy_worktree_agent_run_at_once_each_in_its_own_message() {
    let stack = Stack::start().await.unwrap();
    let project = stack
        .pair_project(OWNER, "hello", "worktree_gate.sh", WAIT)
        .await;
    git(&project, &["init", "-q", "-b", "main"]);
    git(&project, &["config", "user.name", "Test"]);
    git(&project, &["config", "user.email", "test@example.com"]);
    std::fs::write(project.join(".gitignore"), "prompts.log\n").unwrap();
    git(&project, &["add", "-A"]);
    git(&project, &["commit", "-q", "-m", "first"]);
    stack
        .home
        .add_config(&format!(
            "\n[[project]]\npath = \"{}\"\nworktrees = true\n",
            project.display()
        ))
        .unwrap();
    let reload = stack.home.ctl(&["reload"]).unwrap();
    assert!(reload.status.success(), "{reload:?}");
    let gate = tempfile::tempdir().unwrap();
    let g = gate.path().display().to_string();

    stack.cloud.say(OWNER, &format!("hold one {g}")).await;
    wait_message(&stack, "showing the first run", |m| {
        m.text.contains("started: one")
    })
    .await;
    stack.cloud.say(OWNER, &format!("hold two {g}")).await;
    stack.cloud.say(OWNER, &format!("hold three {g}")).await;
    // All three are going at once: none waits for another's end.
    let all = wait_for(WAIT, || {
        let ok = ["one", "two", "three"]
            .iter()
            .all(|n| gate.path().join(format!("{n}.started")).exists());
        async move { ok.then_some(()) }
    })
    .await;
    assert!(
        all.is_some(),
        "not all started: {:#?}\n{}",
        stack.texts(OWNER),
        stack.logs()
    );
    assert!(
        !stack.texts(OWNER).iter().any(|t| t.contains("queued")),
        "a prompt was queued: {:#?}",
        stack.texts(OWNER)
    );
    let two = wait_message(&stack, "showing the second run", |m| {
        m.text.contains("started: two")
    })
    .await;
    assert!(
        two.text.contains("worktree") && two.text.contains("ra/hello/"),
        "{two:#?}"
    );

    // Listed while running.
    let out = stack.home.ctl(&["worktrees", "hello"]).unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(listing.matches("ra/hello/").count(), 2, "{listing}");
    assert!(listing.contains("running"), "{listing}");

    std::fs::write(gate.path().join("release"), "").unwrap();
    let mut ids = Vec::new();
    for n in ["one", "two", "three"] {
        let m = wait_message(&stack, &format!("with {n}'s answer"), |m| {
            m.text.contains(&format!("answered: {n}"))
        })
        .await;
        ids.push(m.message_id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        3,
        "the outputs shared a message: {:#?}",
        stack.texts(OWNER)
    );
    // The project folder has the first run's work only.
    assert!(project.join("one.txt").exists());
    assert!(!project.join("two.txt").exists() && !project.join("three.txt").exists());

    // /clean, once both worktree runs are finished, removes them and keeps
    // the branches (with the work committed on them).
    let finished = wait_for(WAIT, || {
        let out = stack.home.ctl(&["worktrees", "hello"]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        async move { (text.matches("finished").count() == 2).then_some(()) }
    })
    .await;
    assert!(finished.is_some());
    stack.cloud.say(OWNER, "/clean").await;
    let cleaned = wait_message(&stack, "saying what /clean removed", |m| {
        m.text.contains("Removed 2 finished worktrees of hello")
    })
    .await;
    assert!(cleaned.text.contains("branches are kept"), "{cleaned:#?}");
    let branches = git(&project, &["branch", "--list", "ra/*"]);
    assert_eq!(branches.lines().count(), 2, "{branches}");
    for b in branches.lines() {
        let b = b.trim_start_matches(['*', '+', ' ']);
        let files = git(&project, &["ls-tree", "--name-only", b]);
        assert!(
            files.contains("two.txt") != files.contains("three.txt"),
            "{b}: {files}"
        );
    }
    let out = stack.home.ctl(&["worktrees", "hello"]).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello has no worktrees."),
        "{out:?}"
    );
}
