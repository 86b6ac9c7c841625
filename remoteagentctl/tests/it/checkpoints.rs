//! `remoteagentctl diff`, `undo` and `commit` on a real daemon's run in a
//! real git project: the same code path as the phone's diff card.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;
use remoteagent_proto::SessionId;
use remoteagent_proto::events::DoneStatus;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
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

fn ctl_ok(s: &Paired, args: &[&str]) -> String {
    let out = s.home.ctl(args);
    assert!(
        out.status.success(),
        "remoteagentctl {args:?}: {}",
        stderr(&out)
    );
    stdout(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_undo_and_commit_a_run_from_the_computer() {
    let s = Paired::start(
        "web",
        "printf 'one\\nTWO\\n' > a.txt\nprintf 'new\\n' > b.txt\necho 'Made two edits.'\n",
        30 * 24 * 3600,
        |_| {},
    )
    .await;
    let d = s.project.clone();
    git(&d, &["init", "-q", "-b", "main"]);
    git(&d, &["config", "user.name", "T"]);
    git(&d, &["config", "user.email", "t@example.com"]);
    std::fs::write(d.join("a.txt"), "one\ntwo\n").unwrap();
    git(&d, &["add", "a.txt"]);
    git(&d, &["commit", "-q", "-m", "first"]);

    let run = SessionId::generate();
    s.publish(&s.sign(&run, "Edit the two files\nplease", 30))
        .await;
    assert_eq!(s.wait_done(&run).await.1, DoneStatus::Ok);

    let diff = tokio::task::block_in_place(|| ctl_ok(&s, &["diff", "web"]));
    assert!(
        diff.contains("-two") && diff.contains("+TWO") && diff.contains("+new"),
        "{diff}"
    );

    let undone = tokio::task::block_in_place(|| ctl_ok(&s, &["undo", "web"]));
    assert!(undone.starts_with("Restored 2 files"), "{undone}");
    assert_eq!(
        std::fs::read_to_string(d.join("a.txt")).unwrap(),
        "one\ntwo\n"
    );
    assert!(!d.join("b.txt").exists());
    // The undo is itself a checkpoint: undone in turn.
    let again = undone
        .lines()
        .last()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    tokio::task::block_in_place(|| ctl_ok(&s, &["undo", "web", "--session", &again]));
    assert_eq!(std::fs::read_to_string(d.join("b.txt")).unwrap(), "new\n");

    let sid = run.to_string();
    let out = tokio::task::block_in_place(|| ctl_ok(&s, &["commit", "web", "--session", &sid]));
    assert!(
        out.starts_with("Committed 2 files as ") && out.contains(" on main"),
        "{out}"
    );
    assert_eq!(
        git(&d, &["log", "-1", "--format=%s"]),
        "Edit the two files please\n"
    );
    assert_eq!(
        git(&d, &["show", "--name-only", "--format=", "HEAD"]),
        "a.txt\nb.txt\n"
    );
    assert_eq!(git(&d, &["status", "--porcelain"]), "?? run.sh\n");
}
