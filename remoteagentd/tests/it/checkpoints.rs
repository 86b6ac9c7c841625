//! Checkpoints through a real agent task: a script runner edits files in a
//! real git project; the run's stream ends with `changes` whose counts
//! equal `git diff --numstat`, and `checkpoint` commands answer with the
//! diff and undo the run.

use crate::execution_support::*;

use std::path::Path;
use std::process::Command;

use remoteagent_proto::SessionId;
use remoteagent_proto::checkpoints::{
    CheckpointAction, CheckpointPayload, CheckpointResult, FileStatus,
};
use remoteagent_proto::events::{CommandEvent, DoneStatus, OutputEvent};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn checkpoint(run: &SessionId, answer: &SessionId, action: CheckpointAction) -> CommandEvent {
    CommandEvent::Checkpoint(CheckpointPayload {
        session_id: answer.clone(),
        run: run.clone(),
        action,
    })
}

fn result_of(events: &[OutputEvent]) -> CheckpointResult {
    events
        .iter()
        .find_map(|e| match e {
            OutputEvent::CheckpointResult(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no checkpoint_result in {events:?}"))
}

#[tokio::test]
async fn a_run_that_edits_two_files_gets_its_changes_a_diff_and_an_undo() {
    let s = Setup::new().await;
    let d = s.project.path();
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["config", "user.name", "T"]);
    git(d, &["config", "user.email", "t@example.com"]);
    std::fs::write(d.join(".gitignore"), "ignored.log\n").unwrap();
    std::fs::write(d.join("a.txt"), "one\ntwo\n").unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "first"]);
    let script = "printf 'one\\n2\\nthree\\n' > a.txt; printf 'new\\n' > b.txt; echo noise > ignored.log; echo edited";
    let agent = s
        .spawn(s.spec(vec!["/bin/sh".into(), "-c".into(), script.into()]))
        .await;
    let run = SessionId::generate();
    s.send(s.command(&run, "edit two files")).await;
    let events = s.wait_done(&run).await;
    assert_eq!(done_of(&events).status, DoneStatus::Ok);
    let n = events.len();
    let OutputEvent::Changes(changes) = &events[n - 2] else {
        panic!("the event before done is not changes: {events:?}")
    };
    let numstat = git(
        d,
        &[
            "diff",
            "--numstat",
            &format!("refs/remoteagent/{}/{run}/before", s.agent),
            &format!("refs/remoteagent/{}/{run}/after", s.agent),
        ],
    );
    assert_eq!(numstat, "2\t1\ta.txt\n1\t0\tb.txt\n");
    assert_eq!(changes.files_total, 2);
    assert_eq!((changes.added, changes.removed), (3, 1));
    assert_eq!(changes.files[0].path, "a.txt");
    assert_eq!(changes.files[1].status, FileStatus::Added);

    let answer = SessionId::generate();
    s.send(checkpoint(
        &run,
        &answer,
        CheckpointAction::Diff { file: None },
    ))
    .await;
    let events = s.wait_done(&answer).await;
    assert!(matches!(events[0], OutputEvent::Started(_)));
    let CheckpointResult::Diff {
        diff,
        truncated,
        files,
        ..
    } = result_of(&events)
    else {
        panic!("not a diff: {events:?}")
    };
    assert!(!truncated);
    assert_eq!(files.len(), 2);
    assert!(
        diff.contains("+2\n") && diff.contains("+new\n") && !diff.contains("ignored.log"),
        "{diff}"
    );

    let undo = SessionId::generate();
    s.send(checkpoint(
        &run,
        &undo,
        CheckpointAction::Undo { force: false },
    ))
    .await;
    let events = s.wait_done(&undo).await;
    assert_eq!(
        result_of(&events),
        CheckpointResult::Undone {
            restored: vec!["a.txt".into(), "b.txt".into()]
        }
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, OutputEvent::Changes(c) if c.files_total == 2))
    );
    assert_eq!(
        std::fs::read_to_string(d.join("a.txt")).unwrap(),
        "one\ntwo\n"
    );
    assert!(!d.join("b.txt").exists());
    assert_eq!(git(d, &["status", "--porcelain"]), "");

    // A run this agent has no checkpoint of is refused in words.
    let unknown = SessionId::generate();
    let asked = SessionId::generate();
    s.send(checkpoint(
        &unknown,
        &asked,
        CheckpointAction::Diff { file: None },
    ))
    .await;
    let events = s.wait_done(&asked).await;
    assert!(
        matches!(result_of(&events), CheckpointResult::Failed { message } if message.contains("no checkpoint"))
    );
    agent.shutdown().await;
}
