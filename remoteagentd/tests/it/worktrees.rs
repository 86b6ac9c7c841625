//! Worktrees for parallel runs, with real git and real script runners: a
//! prompt to a busy agent with `worktrees = true` runs in a git worktree of
//! its own; two such runs do not see each other's files; the project
//! folder is untouched; the listing shows them and clean removes the
//! finished ones, keeping their branches.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use remoteagent_proto::SessionId;
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_testkit::wait_for;
use remoteagentd::agent::AgentSettings;
use remoteagentd::worktrees::WorktreeSettings;
use remoteagentd::worktrees::answer::survey;

use crate::execution_support::{Setup, WAIT, chunk_text, done_of};

/// `main:GATE` waits for `GATE/release`; `a:GATE` and `b:GATE` each write
/// their file, wait for the other's `.ready` and fail if they see the
/// other's file in their folder.
const RUNNER: &str = r#"me=${1%%:*}; gate=${1#*:}
if [ "$me" = main ]; then
  while [ ! -e "$gate/release" ]; do sleep 0.05; done
  echo "main done"; exit 0
fi
other=a; [ "$me" = a ] && other=b
echo "$me" > "$me.txt"
touch "$gate/$me.ready"
n=0
while [ ! -e "$gate/$other.ready" ]; do
  n=$((n+1)); [ "$n" -gt 1200 ] && { echo "never met $other"; exit 3; }
  sleep 0.05
done
if [ -e "$other.txt" ]; then echo "saw $other"; exit 1; fi
echo "$me alone in $(pwd)"
"#;

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

fn init_repo(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "Test"]);
    git(dir, &["config", "user.email", "test@example.com"]);
    std::fs::write(dir.join("README"), "hello\n").unwrap();
    git(dir, &["add", "README"]);
    git(dir, &["commit", "-q", "-m", "first"]);
}

fn with_worktrees(s: &mut Setup) -> WorktreeSettings {
    let worktrees = WorktreeSettings {
        root: s.logs.path().join("worktrees"),
        projects: vec![s.project.path().to_path_buf()],
        running: Default::default(),
    };
    s.settings = Arc::new(AgentSettings {
        worktrees: worktrees.clone(),
        ..(*s.settings).clone()
    });
    worktrees
}

fn runner() -> Vec<String> {
    vec!["sh".into(), "-c".into(), RUNNER.into(), "sh".into()]
}

fn notices(events: &[OutputEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Notice(n) => Some(n.text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prompts_while_busy_run_apart_in_worktrees_and_clean_keeps_their_branches() {
    let mut s = Setup::new().await;
    init_repo(s.project.path());
    let worktrees = with_worktrees(&mut s);
    let status_before = git(s.project.path(), &["status", "--porcelain"]);
    let head_before = git(s.project.path(), &["rev-parse", "HEAD"]);
    let gate = tempfile::tempdir().unwrap();
    let gate_text = gate.path().display().to_string();
    let _agent = s.spawn(s.spec(runner())).await;

    // Presence tells the cloud that this agent takes parallel runs.
    let presence = wait_for(WAIT, || async {
        let mut admin = s.admin.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(remoteagent_proto::names::presence_key(&s.agent))
            .query_async(&mut admin)
            .await
            .ok()
            .flatten();
        v.filter(|v| remoteagent_proto::worktrees::PresenceWorktrees::of(v).worktrees)
    })
    .await;
    assert!(presence.is_some(), "presence never said worktrees");

    let main = SessionId::generate();
    s.send(s.command(&main, &format!("main:{gate_text}"))).await;
    // The main run is going before the others arrive.
    let started = wait_for(WAIT, || async {
        s.events(&main)
            .await
            .iter()
            .any(|e| matches!(e, OutputEvent::Started(_)))
            .then_some(())
    })
    .await;
    assert!(started.is_some());
    let (a, b) = (SessionId::generate(), SessionId::generate());
    s.send(s.command(&a, &format!("a:{gate_text}"))).await;
    s.send(s.command(&b, &format!("b:{gate_text}"))).await;
    let a_events = s.wait_done(&a).await;
    let b_events = s.wait_done(&b).await;
    for (events, me) in [(&a_events, "a"), (&b_events, "b")] {
        let done = done_of(events);
        let text = chunk_text(events);
        assert_eq!(done.status, DoneStatus::Ok, "{me}: {done:?} {text}");
        assert!(text.contains(&format!("{me} alone in ")), "{text}");
        assert!(
            !text.contains(s.project.path().to_str().unwrap()),
            "{me} ran in the project: {text}"
        );
        let said = notices(events).join("\n");
        assert!(
            said.contains("Running in a git worktree on the new branch ra/proj/"),
            "{said}"
        );
        assert!(said.contains("because proj is busy"), "{said}");
    }
    std::fs::write(gate.path().join("release"), "").unwrap();
    assert_eq!(done_of(&s.wait_done(&main).await).status, DoneStatus::Ok);

    // The project folder is untouched.
    assert_eq!(
        git(s.project.path(), &["status", "--porcelain"]),
        status_before
    );
    assert_eq!(git(s.project.path(), &["rev-parse", "HEAD"]), head_before);
    assert!(!s.project.path().join("a.txt").exists());

    // Listed, finished once their runs ended, each with its one file.
    let listed = wait_for(WAIT, || async {
        let (w, agent) = (worktrees.clone(), s.agent.clone());
        let path = s.project.path().to_path_buf();
        let l = tokio::task::spawn_blocking(move || survey(&w, &agent, "proj", &path, false))
            .await
            .unwrap()
            .unwrap();
        (l.worktrees.len() == 2 && l.worktrees.iter().all(|w| !w.running)).then_some(l)
    })
    .await
    .expect("two finished worktrees");
    assert!(listed.enabled);
    let root = worktrees.agent_root(&s.agent);
    for w in &listed.worktrees {
        assert!(w.branch.starts_with("ra/proj/"), "{w:?}");
        assert!(Path::new(&w.dir).starts_with(&root), "{w:?}");
        assert_eq!(w.changed_files, Some(1), "{w:?}");
    }

    // Clean removes them and keeps the branches, with the work on them.
    let (w, agent) = (worktrees.clone(), s.agent.clone());
    let path = s.project.path().to_path_buf();
    let cleaned = tokio::task::spawn_blocking(move || survey(&w, &agent, "proj", &path, true))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleaned.cleaned.len(), 2, "{cleaned:?}");
    assert!(
        cleaned
            .cleaned
            .iter()
            .all(|c| c.error.is_none() && c.committed_files == 1),
        "{cleaned:?}"
    );
    assert!(cleaned.worktrees.is_empty(), "{cleaned:?}");
    for w in &listed.worktrees {
        assert!(!Path::new(&w.dir).exists(), "{w:?}");
        let files = git(s.project.path(), &["ls-tree", "--name-only", &w.branch]);
        let mine = if files.contains("a.txt") {
            "a.txt"
        } else {
            "b.txt"
        };
        let other = if mine == "a.txt" { "b.txt" } else { "a.txt" };
        assert!(
            files.contains(mine) && !files.contains(other),
            "{}: {files}",
            w.branch
        );
    }
    assert_eq!(
        git(s.project.path(), &["status", "--porcelain"]),
        status_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_git_repository_a_prompt_while_busy_is_refused_saying_why() {
    let mut s = Setup::new().await;
    with_worktrees(&mut s);
    let gate = tempfile::tempdir().unwrap();
    let gate_text = gate.path().display().to_string();
    let _agent = s.spawn(s.spec(runner())).await;
    let main = SessionId::generate();
    s.send(s.command(&main, &format!("main:{gate_text}"))).await;
    let started = wait_for(WAIT, || async {
        s.events(&main)
            .await
            .iter()
            .any(|e| matches!(e, OutputEvent::Started(_)))
            .then_some(())
    })
    .await;
    assert!(started.is_some());
    let second = SessionId::generate();
    s.send(s.command(&second, &format!("a:{gate_text}"))).await;
    let events = s.wait_done(&second).await;
    let done = done_of(&events);
    assert_eq!(done.status, DoneStatus::Rejected);
    assert!(done.message.unwrap_or_default().contains("proj is busy"));
    let said = notices(&events).join("\n");
    assert!(
        said.contains("could not: the project folder is not a git repository"),
        "{said}"
    );
    std::fs::write(gate.path().join("release"), "").unwrap();
    assert_eq!(done_of(&s.wait_done(&main).await).status, DoneStatus::Ok);
}
