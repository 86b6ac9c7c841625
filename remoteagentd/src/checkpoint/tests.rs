//! Checkpoints with the real `git` in temporary repositories.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use remoteagent_proto::checkpoints::FileStatus;
use remoteagent_proto::{AgentId, SessionId};

use super::*;

fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn git_text(dir: &Path, args: &[&str]) -> String {
    String::from_utf8_lossy(&git(dir, args)).trim().to_string()
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A repository with a commit, an ignored file, a staged change, an
/// unstaged change, an untracked file and a stash.
fn repo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["config", "user.name", "Test User"]);
    git(d, &["config", "user.email", "test@example.com"]);
    write(d, ".gitignore", b"secret.env\nbuild/\n");
    write(d, "a.txt", b"one\ntwo\nthree\n");
    write(d, "b.txt", b"bee\n");
    write(d, "src/lib.rs", b"fn main() {}\n");
    write(d, "bin.dat", &[0, 1, 2, 3, 255, 0, 9]);
    write(d, "run.sh", b"#!/bin/sh\necho hi\n");
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "first"]);
    write(d, "b.txt", b"bee stash\n");
    git(d, &["stash", "-q"]);
    write(d, "staged.txt", b"staged\n");
    git(d, &["add", "staged.txt"]);
    write(d, "b.txt", b"bee dirty\n");
    write(d, "notes.txt", b"untracked\n");
    write(d, "secret.env", b"TOKEN=1\n");
    write(d, "build/out.o", b"obj\n");
    tmp
}

fn ids() -> (AgentId, SessionId) {
    (
        AgentId::parse("agent1").unwrap(),
        SessionId::parse("run1").unwrap(),
    )
}

struct State {
    status: Vec<u8>,
    head: String,
    index: Vec<u8>,
    stash: String,
    branches: String,
}

fn state(d: &Path) -> State {
    State {
        status: git(
            d,
            &["status", "--porcelain=v1", "-z", "--untracked-files=all"],
        ),
        head: git_text(d, &["rev-parse", "HEAD"]),
        index: std::fs::read(d.join(".git/index")).unwrap(),
        stash: git_text(d, &["stash", "list", "--format=%H"]),
        branches: git_text(d, &["for-each-ref", "refs/heads", "refs/stash"]),
    }
}

fn assert_same(a: &State, b: &State) {
    assert_eq!(a.status, b.status, "git status");
    assert_eq!(a.head, b.head, "HEAD");
    assert!(a.index == b.index, "the index bytes");
    assert_eq!(a.stash, b.stash, "the stash");
    assert_eq!(a.branches, b.branches, "the branches");
}

/// The agent's run: edits a.txt, deletes src/lib.rs, adds new/file.txt,
/// changes the binary, makes run.sh not executable... and touches an
/// ignored file.
fn the_run(d: &Path) {
    write(d, "a.txt", b"one\n2\nthree\nfour\n");
    std::fs::remove_file(d.join("src/lib.rs")).unwrap();
    write(d, "new/file.txt", b"new\nfile\n");
    write(d, "bin.dat", &[9, 9, 0, 255]);
    std::fs::set_permissions(d.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(d, "secret.env", b"TOKEN=2\n");
    write(d, "build/out.o", b"obj2\n");
}

async fn checkpointed_run(d: &Path) -> (String, String) {
    let (agent, run) = ids();
    let before = snapshot(d, &agent, &run, Side::Before)
        .await
        .unwrap()
        .unwrap();
    the_run(d);
    let after = snapshot(d, &agent, &run, Side::After)
        .await
        .unwrap()
        .unwrap();
    (before, after)
}

#[tokio::test]
async fn a_checkpoint_leaves_status_head_index_and_stash_byte_identical() {
    let tmp = repo();
    let d = tmp.path();
    // `git status` may refresh the index's stat data once: from then on
    // it is stable.
    let _ = state(d);
    let was = state(d);
    let (agent, run) = ids();
    snapshot(d, &agent, &run, Side::Before)
        .await
        .unwrap()
        .unwrap();
    snapshot(d, &agent, &run, Side::After)
        .await
        .unwrap()
        .unwrap();
    assert_same(&was, &state(d));
    let leftovers: Vec<_> = std::fs::read_dir(d.join(".git"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("remoteagent-index")
        })
        .collect();
    assert!(leftovers.is_empty(), "no temporary index is left behind");
}

#[tokio::test]
async fn counts_equal_git_diff_numstat_and_ignored_files_never_show() {
    let tmp = repo();
    let d = tmp.path();
    let (before, after) = checkpointed_run(d).await;
    let r = Repo::find(d).await.unwrap().unwrap();
    let changes = run_changes(&r, &before, &after).await.unwrap();
    let numstat = git_text(d, &["diff", "--no-renames", "--numstat", &before, &after]);
    let expected: Vec<(String, String, String)> = numstat
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect();
    let got: Vec<(String, String, String)> = changes
        .iter()
        .map(|c| {
            let (a, r) = if c.file.binary {
                ("-".to_string(), "-".to_string())
            } else {
                (c.file.added.to_string(), c.file.removed.to_string())
            };
            (a, r, c.path.clone())
        })
        .collect();
    assert_eq!(got, expected);
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        ["a.txt", "bin.dat", "new/file.txt", "run.sh", "src/lib.rs"]
    );
    let status = |p: &str| changes.iter().find(|c| c.path == p).unwrap().file.status;
    assert_eq!(status("a.txt"), FileStatus::Modified);
    assert_eq!(status("new/file.txt"), FileStatus::Added);
    assert_eq!(status("src/lib.rs"), FileStatus::Deleted);
    assert_eq!(status("run.sh"), FileStatus::TypeChanged);
    let payload = changes_payload(&changes, None).unwrap();
    assert_eq!(payload.files_total, 5);
    assert_eq!(payload.added, 2 + 2);
    assert_eq!(payload.removed, 1 + 1);
    let diff = diff_text(&r, &before, &after, None).await.unwrap();
    assert!(diff.contains("+four"));
    assert!(!diff.contains("secret.env") && !diff.contains("TOKEN") && !diff.contains("build/"));
    let one = diff_text(&r, &before, &after, Some("a.txt")).await.unwrap();
    assert!(one.contains("a/a.txt") && !one.contains("new/file.txt"));
}

#[tokio::test]
async fn undo_restores_exact_bytes_modes_deleted_and_new_files_and_can_be_undone() {
    let tmp = repo();
    let d = tmp.path();
    let before_bytes = |d: &Path| {
        (
            std::fs::read(d.join("a.txt")).unwrap(),
            std::fs::read(d.join("src/lib.rs")).unwrap(),
            std::fs::read(d.join("bin.dat")).unwrap(),
            std::fs::metadata(d.join("run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
        )
    };
    let was = before_bytes(d);
    checkpointed_run(d).await;
    let (agent, run) = ids();
    let answer = SessionId::parse("undo1").unwrap();
    let out = undo(d, &agent, &run, &answer, false).await.unwrap();
    let UndoOutcome::Undone { restored, changes } = out else {
        panic!("refused: {out:?}")
    };
    assert_eq!(restored.len(), 5);
    assert_eq!(before_bytes(d), was);
    assert!(
        !d.join("new").exists(),
        "the new file and its folder are gone"
    );
    assert_eq!(
        std::fs::read(d.join("b.txt")).unwrap(),
        b"bee dirty\n",
        "an untouched dirty file stays"
    );
    assert_eq!(
        std::fs::read(d.join("secret.env")).unwrap(),
        b"TOKEN=2\n",
        "ignored files are never touched"
    );
    assert_eq!(changes.unwrap().files_total, 5);
    // The undo undone: the run's state is back.
    let again = SessionId::parse("undo2").unwrap();
    undo(d, &agent, &answer, &again, false).await.unwrap();
    assert_eq!(
        std::fs::read(d.join("new/file.txt")).unwrap(),
        b"new\nfile\n"
    );
    assert_eq!(
        std::fs::metadata(d.join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
}

#[tokio::test]
async fn undo_refuses_naming_files_edited_after_the_run_unless_forced() {
    let tmp = repo();
    let d = tmp.path();
    checkpointed_run(d).await;
    write(d, "a.txt", b"the user's edit\n");
    write(d, "b.txt", b"not the run's file\n");
    let (agent, run) = ids();
    let answer = SessionId::parse("undo1").unwrap();
    let out = undo(d, &agent, &run, &answer, false).await.unwrap();
    assert_eq!(
        out,
        UndoOutcome::Refused {
            changed_since: vec!["a.txt".into()]
        }
    );
    assert_eq!(
        std::fs::read(d.join("a.txt")).unwrap(),
        b"the user's edit\n"
    );
    assert!(d.join("new/file.txt").exists(), "nothing was restored");
    let out = undo(d, &agent, &run, &answer, true).await.unwrap();
    assert!(matches!(out, UndoOutcome::Undone { .. }));
    assert_eq!(
        std::fs::read(d.join("a.txt")).unwrap(),
        b"one\ntwo\nthree\n"
    );
}

#[tokio::test]
async fn commit_holds_exactly_the_runs_changes_and_other_dirty_files_stay() {
    let tmp = repo();
    let d = tmp.path();
    let old_head = git_text(d, &["rev-parse", "HEAD"]);
    let (_, after) = checkpointed_run(d).await;
    let (agent, run) = ids();
    let c = commit(d, &agent, &run, "Edit a.txt\n\nDetails")
        .await
        .unwrap();
    assert_eq!(c.branch, "main");
    assert_eq!(c.files, 5);
    let head = git_text(d, &["rev-parse", "HEAD"]);
    assert!(head.starts_with(&c.commit));
    assert_eq!(git_text(d, &["rev-parse", "HEAD^"]), old_head);
    assert_eq!(
        git_text(d, &["log", "-1", "--format=%an <%ae>%n%B"]),
        "Test User <test@example.com>\nEdit a.txt\n\nDetails"
    );
    let files = git_text(
        d,
        &[
            "diff-tree",
            "-r",
            "--name-only",
            "--no-commit-id",
            "HEAD^",
            "HEAD",
        ],
    );
    assert_eq!(files, "a.txt\nbin.dat\nnew/file.txt\nrun.sh\nsrc/lib.rs");
    for p in ["a.txt", "bin.dat", "new/file.txt", "run.sh"] {
        assert_eq!(
            git_text(d, &["rev-parse", &format!("HEAD:{p}")]),
            git_text(d, &["rev-parse", &format!("{after}:{p}")])
        );
    }
    // The run's files show as committed; the user's dirty and staged files
    // stay as they were.
    let status = git(d, &["status", "--porcelain=v1", "--untracked-files=all"]);
    assert_eq!(
        String::from_utf8_lossy(&status),
        " M b.txt\nA  staged.txt\n?? notes.txt\n"
    );
}

#[tokio::test]
async fn branch_leaves_the_current_branch_untouched_and_puts_the_files_back() {
    let tmp = repo();
    let d = tmp.path();
    let was_head = git_text(d, &["rev-parse", "HEAD"]);
    let was_symbolic = git_text(d, &["symbolic-ref", "HEAD"]);
    let a_before = std::fs::read(d.join("a.txt")).unwrap();
    let (_, after) = checkpointed_run(d).await;
    let (agent, run) = ids();
    let c = branch(d, &agent, "my agent!", &run, "Try it")
        .await
        .unwrap();
    assert_eq!(c.branch, "ra/my-agent/run1");
    assert_eq!(git_text(d, &["rev-parse", "HEAD"]), was_head);
    assert_eq!(git_text(d, &["symbolic-ref", "HEAD"]), was_symbolic);
    assert_eq!(git_text(d, &["rev-parse", "ra/my-agent/run1^"]), was_head);
    assert_eq!(
        git_text(d, &["rev-parse", "ra/my-agent/run1:a.txt"]),
        git_text(d, &["rev-parse", &format!("{after}:a.txt")])
    );
    assert_eq!(std::fs::read(d.join("a.txt")).unwrap(), a_before);
    assert!(d.join("src/lib.rs").exists() && !d.join("new/file.txt").exists());
}

#[tokio::test]
async fn no_repository_no_checkpoint_and_pruning_keeps_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let (agent, run) = ids();
    assert_eq!(
        snapshot(tmp.path(), &agent, &run, Side::Before)
            .await
            .unwrap(),
        None
    );
    let tmp = repo();
    let d = tmp.path();
    for i in 0..4 {
        let s = SessionId::parse(format!("r{i}")).unwrap();
        snapshot(d, &agent, &s, Side::Before).await.unwrap();
        snapshot(d, &agent, &s, Side::After).await.unwrap();
    }
    let keep = Retention {
        max_age: std::time::Duration::from_secs(3600),
        max_runs: 2,
    };
    assert_eq!(prune(d, &agent, keep).await.unwrap(), 2);
    let left = git_text(
        d,
        &["for-each-ref", "--format=%(refname)", "refs/remoteagent/"],
    );
    assert_eq!(left.lines().count(), 4);
    let r = Repo::find(d).await.unwrap().unwrap();
    assert!(last_run(&r, &agent).await.unwrap().is_some());
}
