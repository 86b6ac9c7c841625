//! `remoteagentctl sessions NAME` on the real daemon: a Claude Code
//! stand-in (`e2e/tests/fixtures/sessions-claude/claude`: stream-json with
//! a session id, its argv recorded) runs signed commands; the list shows
//! each session (when, runs, turns, cost, first prompt) and the command
//! that continues it in a terminal; a command naming a session continues
//! it (`--resume <id>` in the argv), and one naming a malformed id is
//! refused and runs nothing. The list lives in the daemon's state folder,
//! 0600, never in the project.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use crate::common;

use common::*;
use remoteagent_proto::events::{CommandEvent, CommandPayload, DoneStatus, OutputEvent};
use remoteagent_proto::{SessionId, envelope};
use remoteagent_testkit::RedisServer;

async fn setup() -> Paired {
    let redis = RedisServer::start().unwrap();
    let cloud = FakeCloud::start(redis.url()).await;
    let home = Arc::new(Home::with_file_store(&cloud.url));
    let fake =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/tests/fixtures/sessions-claude/claude");
    home.install_tool("claude", &fake);
    let h = home.clone();
    let daemon = blocking(move || h.start_daemon()).await;
    let project = home.project("web");
    let (agent, _) = pair_project_with_ttl(
        &home,
        &cloud,
        &project,
        "web",
        &["--runner", "claude"],
        3600,
    )
    .await;
    let s = Paired {
        home,
        cloud,
        redis,
        daemon,
        agent,
        project,
    };
    s.wait_online().await;
    s
}

/// Runs `prompt` (continuing `resume` when given) and waits for its end.
async fn run(s: &Paired, prompt: &str, resume: Option<&str>) -> (Vec<OutputEvent>, DoneStatus) {
    let session = SessionId::generate();
    let env = envelope::sign(
        &s.cloud.state.key,
        &s.agent,
        CommandEvent::Command(CommandPayload {
            session_id: session.clone(),
            prompt: prompt.into(),
            r#continue: false,
            attachments: Vec::new(),
            resume: resume.map(str::to_string),
            mode: None,
        }),
        30,
    )
    .unwrap();
    s.publish(&env).await;
    s.wait_done(&session).await
}

/// The stand-in's runs: (argv, the session it reported).
fn runs(project: &Path) -> Vec<(Vec<String>, String)> {
    std::fs::read_to_string(project.join("argv.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let argv = v["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            (argv, v["session"].as_str().unwrap().to_string())
        })
        .collect()
}

fn ctl_ok(s: &Paired, args: &[&str]) -> String {
    let out = s.home.ctl(args);
    assert!(
        out.status.success(),
        "remoteagentctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_lists_each_with_the_command_that_resumes_it() {
    let s = setup().await;
    let none = blocking({
        let h = s.home.clone();
        move || h.ctl(&["sessions", "web"])
    })
    .await;
    assert!(none.status.success());
    assert_eq!(
        String::from_utf8_lossy(&none.stdout),
        "web has no sessions yet: one begins with its first run.\n"
    );

    assert_eq!(run(&s, "first: add a README", None).await.1, DoneStatus::Ok);
    assert_eq!(
        run(&s, "second: fix the\ntests", None).await.1,
        DoneStatus::Ok
    );
    let recorded = runs(&s.project);
    let (older, newer) = (recorded[0].1.clone(), recorded[1].1.clone());
    // Named by the command, the older session is continued.
    assert_eq!(
        run(&s, "third: and the docs", Some(&older)).await.1,
        DoneStatus::Ok
    );
    let argv = &runs(&s.project)[2].0;
    let at = argv.iter().position(|a| a == "--resume").expect("--resume");
    assert_eq!(argv[at + 1], older, "{argv:?}");

    // A malformed id is refused, said in words, and nothing runs.
    let (events, status) = run(&s, "fourth", Some("--output=/etc/passwd")).await;
    assert_eq!(status, DoneStatus::Rejected);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, OutputEvent::Done(d) if d.message.as_deref().is_some_and(|m| m.contains("nothing ran")))),
        "{events:?}"
    );
    assert_eq!(runs(&s.project).len(), 3);

    let out = tokio::task::block_in_place(|| ctl_ok(&s, &["sessions", "web"]));
    let folder = std::fs::canonicalize(&s.project).unwrap();
    let folder = folder.to_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("Sessions of web in {folder}, newest first:"),
        "{out}"
    );
    // The table: the resumed session first with its two runs, turns and
    // cost summed; the first prompt on one line.
    let row1 = lines.iter().find(|l| l.contains("#1 ")).expect(&out);
    assert!(
        row1.contains("2 runs") && row1.contains("4") && row1.contains("$0.10"),
        "{out}"
    );
    assert!(row1.contains("“first: add a README”"), "{out}");
    let row2 = lines.iter().find(|l| l.contains("#2 ")).expect(&out);
    assert!(
        row2.contains("1 run ") && row2.contains("“second: fix the tests”"),
        "{out}"
    );
    assert!(out.contains("Continue one in a terminal:"), "{out}");
    assert!(
        out.contains(&format!("  #1  cd {folder} && claude --resume {older}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("  #2  cd {folder} && claude --resume {newer}\n")),
        "{out}"
    );

    let json: serde_json::Value = serde_json::from_str(&tokio::task::block_in_place(|| {
        ctl_ok(&s, &["sessions", "web", "--json"])
    }))
    .unwrap();
    assert_eq!(json["sessions"][0]["id"], older.as_str(), "{json}");
    assert_eq!(json["sessions"][0]["runs"], 2, "{json}");
    assert_eq!(json["sessions"][0]["turns"], 4, "{json}");
    assert_eq!(
        json["sessions"][1]["resume_command"],
        format!("cd {folder} && claude --resume {newer}"),
        "{json}"
    );

    // Kept in the daemon's state folder, 0600; nothing in the project but
    // what the runner itself wrote.
    let file = s
        .home
        .path()
        .join(format!("state/remoteagent/conversations/{}.json", s.agent));
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    let in_project: Vec<_> = std::fs::read_dir(&s.project)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(in_project, ["argv.jsonl"]);

    // An unknown agent is exit 4.
    let unknown = tokio::task::block_in_place(|| s.home.ctl(&["sessions", "nope"]));
    assert_eq!(unknown.status.code(), Some(4));
}
