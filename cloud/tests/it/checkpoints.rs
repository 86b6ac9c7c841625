//! The diff card (issue 18) in the cloud: a run's `changes` shown as a card
//! after its end, and its buttons sent as signed `checkpoint` commands whose
//! answers (written here by the test, as the daemon does, on the answer's
//! own stream) are shown: the diff in an escaped `<pre>` with ▶ Next file,
//! a long diff's files as documents, Undo refused then Undo anyway, the
//! undo's own card, Commit with a typed message, Branch with the proposed
//! one, a stranger's press refused, and a silent daemon told in words.

use redis::aio::PubSub;
use remoteagent_proto::checkpoints::{
    ChangedFile, ChangesPayload, CheckpointAction, CheckpointPayload, CheckpointResult, FileStatus,
};
use remoteagent_proto::events::{CommandEvent, DonePayload, DoneStatus, OutputEvent};
use remoteagent_proto::files::{FileOrigin, FilePayload};
use remoteagent_proto::{AgentId, SessionId, envelope};
use remoteagent_testkit::wait_for;

use crate::support::{Backend, TIMEOUT, TestApp, next_message, user_id};

async fn next_command(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> CommandEvent {
    let token = next_message(sub).await;
    envelope::verify(&app.state.key.public_key(), agent, &token)
        .unwrap()
        .command
}

async fn next_checkpoint(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> CheckpointPayload {
    match next_command(app, sub, agent).await {
        CommandEvent::Checkpoint(c) => c,
        other => panic!("expected a checkpoint command, got {other:?}"),
    }
}

fn done() -> OutputEvent {
    OutputEvent::Done(DonePayload {
        status: DoneStatus::Ok,
        exit_code: None,
        duration_ms: 5,
        message: None,
        chunks: 0,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    })
}

/// The daemon's answer to `asked`: `events`, then `done`.
async fn answer(
    app: &TestApp,
    agent: &AgentId,
    asked: &CheckpointPayload,
    events: Vec<OutputEvent>,
) {
    for event in events.into_iter().chain([done()]) {
        app.xadd(agent, &asked.session_id, &event).await;
    }
}

fn file(path: &str, added: u64, removed: u64) -> ChangedFile {
    ChangedFile {
        path: path.into(),
        status: FileStatus::Modified,
        added,
        removed,
        binary: false,
    }
}

/// A prompt whose run changed files: its session id once the card is shown.
async fn run_with_changes(
    app: &TestApp,
    sub: &mut PubSub,
    agent: &AgentId,
    user: i64,
    changes: ChangesPayload,
) -> SessionId {
    app.say(user, "change things").await;
    let run = match next_command(app, sub, agent).await {
        CommandEvent::Command(c) => c.session_id,
        other => panic!("expected a prompt, got {other:?}"),
    };
    app.xadd(agent, &run, &OutputEvent::Changes(changes)).await;
    app.end_run(agent, &run).await;
    run
}

/// The newest message containing `needle`, and its buttons' (text, data).
async fn shown(app: &TestApp, user: i64, needle: &str) -> (i64, String, Vec<(String, String)>) {
    app.expect_message(user, needle).await;
    let m = app
        .tg
        .messages(user)
        .into_iter()
        .rev()
        .find(|m| m.text.contains(needle))
        .unwrap();
    let buttons = m
        .reply_markup
        .as_ref()
        .and_then(|k| k["inline_keyboard"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|b| {
            (
                b["text"].as_str().unwrap().to_string(),
                b["callback_data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (m.message_id, m.text, buttons)
}

fn data<'a>(buttons: &'a [(String, String)], text: &str) -> &'a str {
    &buttons
        .iter()
        .find(|(t, _)| t == text)
        .unwrap_or_else(|| panic!("no button {text} in {buttons:?}"))
        .1
}

async fn the_card_and_its_buttons(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    let mut files: Vec<ChangedFile> = (0..12)
        .map(|n| file(&format!("src/f{n}.rs"), 1, 0))
        .collect();
    files[0] = file("<b>&.rs", 100, 2);
    files[1] = ChangedFile {
        binary: true,
        status: FileStatus::Added,
        ..file("logo.png", 0, 0)
    };
    let run = run_with_changes(
        &app,
        &mut sub,
        &agent,
        user,
        ChangesPayload {
            files,
            files_total: 13,
            added: 120,
            removed: 8,
            worktree_branch: None,
        },
    )
    .await;

    // The card: counts, escaped paths, the rest counted, four buttons.
    let (card, text, buttons) = shown(&app, user, "📝 hello changed 13 files (+120 −8)").await;
    assert!(text.contains("• <b>&.rs +100 −2\n"), "{text}");
    assert!(text.contains("• logo.png binary (new)\n"), "{text}");
    assert!(text.ends_with("\nand 3 more"), "{text}");
    let texts: Vec<&str> = buttons.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(texts, ["🔍 Diff", "↩️ Undo", "✅ Commit", "🌿 Branch"]);
    assert!(buttons.iter().all(|(_, d)| d.len() <= 64), "{buttons:?}");

    // Someone else's press is refused and publishes nothing.
    let stranger = user_id();
    let refused = app
        .press_on(stranger, card, data(&buttons, "🔍 Diff"))
        .await;
    assert_eq!(
        refused,
        "Only the account that paired this agent can do that."
    );

    // 🔍 Diff: the diff escaped in a <pre>, with ▶ Next file.
    let said = app.press_on(user, card, data(&buttons, "🔍 Diff")).await;
    assert_eq!(said, "Asking hello for the diff…");
    let asked = next_checkpoint(&app, &mut sub, &agent).await;
    assert_eq!(
        (&asked.run, &asked.action),
        (&run, &CheckpointAction::Diff { file: None })
    );
    let three = vec![
        file("<b>&.rs", 1, 1),
        file("b.rs", 1, 0),
        file("c.rs", 0, 1),
    ];
    answer(
        &app,
        &agent,
        &asked,
        vec![OutputEvent::CheckpointResult(CheckpointResult::Diff {
            files: three.clone(),
            file: None,
            diff: "--- a/<b>&.rs\n+++ b/<b>&.rs\n-<i>old</i>\n+new & more\n".into(),
            truncated: false,
        })],
    )
    .await;
    let (diff_msg, text, buttons) = shown(&app, user, "🔍 hello: the diff of 3 files").await;
    assert!(text.contains("-<i>old</i>\n+new & more"), "{text}");
    let m = app.tg.message(user, diff_msg).unwrap();
    assert!(
        m.entities.iter().any(|e| e.kind == "pre"),
        "{:?}",
        m.entities
    );
    // ▶ Next file turns the page in place: file 1 of 3.
    let said = app
        .press_on(user, diff_msg, data(&buttons, "▶ Next file"))
        .await;
    assert_eq!(said, "Asking hello for the next file…");
    let asked = next_checkpoint(&app, &mut sub, &agent).await;
    assert_eq!(asked.action, CheckpointAction::Diff { file: Some(0) });
    answer(
        &app,
        &agent,
        &asked,
        vec![OutputEvent::CheckpointResult(CheckpointResult::Diff {
            files: three.clone(),
            file: Some(0),
            diff: "-<i>old</i>\n".into(),
            truncated: false,
        })],
    )
    .await;
    let paged = wait_for(TIMEOUT, || {
        let m = app.tg.message(user, diff_msg);
        async move { m.filter(|m| m.text.contains("file 1 of 3")) }
    })
    .await
    .expect("the diff's message shows the first file");
    assert!(paged.text.contains("• <b>&.rs +1 −1"), "{}", paged.text);

    // A long diff: cut in the message, whole as the daemon's files.
    app.press_on(user, card, data(&buttons_of(&app, user, card), "🔍 Diff"))
        .await;
    let asked = next_checkpoint(&app, &mut sub, &agent).await;
    let whole = "+<line> & more\n".repeat(2_000);
    let diff_file = crate::get::blob(
        &app,
        &agent,
        "changes-hello-1.diff",
        whole.as_bytes(),
        whole.as_bytes(),
    )
    .await;
    answer(
        &app,
        &agent,
        &asked,
        vec![
            OutputEvent::CheckpointResult(CheckpointResult::Diff {
                files: three.clone(),
                file: None,
                diff: whole[..3_000].to_string(),
                truncated: true,
            }),
            OutputEvent::File(FilePayload {
                file: diff_file,
                origin: FileOrigin::Other,
            }),
        ],
    )
    .await;
    let (_, text, _) = shown(&app, user, "the whole diff follows as a .diff file").await;
    assert!(text.contains("+<line> & more"), "{text}");
    let docs = wait_for(TIMEOUT, || {
        let d = app.tg.documents_in(user);
        async move { (!d.is_empty()).then_some(d) }
    })
    .await
    .expect("the long diff as a document");
    assert_eq!(docs[0].file_name, "changes-hello-1.diff");
    assert_eq!(docs[0].bytes, whole.as_bytes());
    assert!(
        app.tg.refused_calls().is_empty(),
        "{:?}",
        app.tg.refused_calls()
    );
    app.finish().await;
}

/// The buttons of message `id` as (text, data).
fn buttons_of(app: &TestApp, user: i64, id: i64) -> Vec<(String, String)> {
    let m = app.tg.message(user, id).unwrap();
    m.reply_markup.as_ref().unwrap()["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().clone())
        .map(|b| {
            (
                b["text"].as_str().unwrap().to_string(),
                b["callback_data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_and_its_diff_sqlite() {
    the_card_and_its_buttons(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_and_its_diff_postgres() {
    the_card_and_its_buttons(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_commit_and_branch() {
    let app = TestApp::start(Backend::Sqlite).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    let two = ChangesPayload {
        files: vec![file("a.rs", 3, 1), file("b.rs", 2, 0)],
        files_total: 2,
        added: 5,
        removed: 1,
        worktree_branch: None,
    };
    let run = run_with_changes(&app, &mut sub, &agent, user, two.clone()).await;
    let (card, _, buttons) = shown(&app, user, "📝 hello changed 2 files (+5 −1)").await;

    // ↩️ Undo refused, then ↩️ Undo anyway with force; the undo's own card.
    let said = app.press_on(user, card, data(&buttons, "↩️ Undo")).await;
    assert_eq!(said, "Asking hello to undo the run…");
    let asked = next_checkpoint(&app, &mut sub, &agent).await;
    assert_eq!(
        (&asked.run, &asked.action),
        (&run, &CheckpointAction::Undo { force: false })
    );
    answer(
        &app,
        &agent,
        &asked,
        vec![OutputEvent::CheckpointResult(
            CheckpointResult::UndoRefused {
                changed_since: vec!["a.rs".into()],
            },
        )],
    )
    .await;
    let (refusal, text, refusal_buttons) =
        shown(&app, user, "hello did not undo: 1 file changed again").await;
    assert!(text.contains("• a.rs"), "{text}");
    app.press_on(user, refusal, data(&refusal_buttons, "↩️ Undo anyway"))
        .await;
    let asked = next_checkpoint(&app, &mut sub, &agent).await;
    assert_eq!(
        (&asked.run, &asked.action),
        (&run, &CheckpointAction::Undo { force: true })
    );
    let undo = asked.session_id.clone();
    answer(
        &app,
        &agent,
        &asked,
        vec![
            OutputEvent::CheckpointResult(CheckpointResult::Undone {
                restored: vec!["a.rs".into(), "b.rs".into()],
            }),
            OutputEvent::Changes(ChangesPayload {
                added: 1,
                removed: 5,
                ..two.clone()
            }),
        ],
    )
    .await;
    app.expect_message(
        user,
        "hello restored 2 files to how they were before the run:\n• a.rs\n• b.rs",
    )
    .await;
    let (undo_card, _, undo_buttons) =
        shown(&app, user, "📝 The undo on hello changed 2 files (+1 −5)").await;
    // Its buttons are about the undo's own checkpoint, and owner only.
    let stranger = user_id();
    let refused = app
        .press_on(stranger, undo_card, data(&undo_buttons, "↩️ Undo"))
        .await;
    assert_eq!(
        refused,
        "Only the account that paired this agent can do that."
    );
    app.press_on(user, undo_card, data(&undo_buttons, "↩️ Undo"))
        .await;
    let asked = next_checkpoint(&app, &mut sub, &agent).await;
    assert_eq!(asked.run, undo);
    answer(
        &app,
        &agent,
        &asked,
        vec![OutputEvent::CheckpointResult(CheckpointResult::Failed {
            message: "the <files> are gone".into(),
        })],
    )
    .await;
    app.expect_message(user, "hello could not undo the run: the <files> are gone")
        .await;

    // ✅ Commit: the proposal, ✎ Edit message, the typed message committed.
    app.press_on(user, card, data(&buttons, "✅ Commit")).await;
    let asked = next_checkpoint(&app, &mut sub, &agent).await;
    assert_eq!(
        (&asked.run, &asked.action),
        (&run, &CheckpointAction::ProposeCommit)
    );
    answer(
        &app,
        &agent,
        &asked,
        vec![OutputEvent::CheckpointResult(
            CheckpointResult::CommitProposal {
                message: "Fix <the> tests".into(),
            },
        )],
    )
    .await;
    let (proposal, text, proposal_buttons) = shown(&app, user, "with this message?").await;
    assert!(
        text.contains("current branch") && text.contains("Fix <the> tests"),
        "{text}"
    );
    let said = app
        .press_on(user, proposal, data(&proposal_buttons, "✎ Edit message"))
        .await;
    assert_eq!(said, "Send the commit message as a message.");
    app.expect_message(
        user,
        "Send the commit message for hello as your next message.",
    )
    .await;
    app.say(user, "My own <message>").await;
    let asked = next_checkpoint(&app, &mut sub, &agent).await;
    assert_eq!(
        (&asked.run, &asked.action),
        (
            &run,
            &CheckpointAction::Commit {
                message: "My own <message>".into()
            }
        )
    );
    answer(
        &app,
        &agent,
        &asked,
        vec![OutputEvent::CheckpointResult(CheckpointResult::Committed {
            commit: "abc1234".into(),
            branch: "main".into(),
            files: 4,
        })],
    )
    .await;
    app.expect_message(user, "✅ Committed abc1234 on main (4 files)")
        .await;

    // 🌿 Branch: the proposed message as it is.
    app.press_on(user, card, data(&buttons, "🌿 Branch")).await;
    let asked = next_checkpoint(&app, &mut sub, &agent).await;
    assert_eq!(asked.action, CheckpointAction::ProposeCommit);
    answer(
        &app,
        &agent,
        &asked,
        vec![OutputEvent::CheckpointResult(
            CheckpointResult::CommitProposal {
                message: "Fix the tests".into(),
            },
        )],
    )
    .await;
    let (proposal, _, proposal_buttons) =
        shown(&app, user, "on a new branch with this message?").await;
    app.press_on(user, proposal, data(&proposal_buttons, "🌿 Branch"))
        .await;
    let asked = next_checkpoint(&app, &mut sub, &agent).await;
    assert_eq!(
        (&asked.run, &asked.action),
        (
            &run,
            &CheckpointAction::Branch {
                message: "Fix the tests".into()
            }
        )
    );
    answer(
        &app,
        &agent,
        &asked,
        vec![OutputEvent::CheckpointResult(CheckpointResult::Committed {
            commit: "def5678".into(),
            branch: "ra/hello/ab12".into(),
            files: 2,
        })],
    )
    .await;
    app.expect_message(
        user,
        "🌿 Committed def5678 on the new branch ra/hello/ab12 (2 files)",
    )
    .await;
    assert!(
        app.tg.refused_calls().is_empty(),
        "{:?}",
        app.tg.refused_calls()
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_never_answers_a_button_is_told() {
    let app = TestApp::start_with(Backend::Sqlite, &[("GET_ANSWER_SECS", "1")]).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    let changes = ChangesPayload {
        files: vec![file("a.rs", 1, 0)],
        files_total: 1,
        added: 1,
        removed: 0,
        worktree_branch: Some("ra/hello/x1".into()),
    };
    run_with_changes(&app, &mut sub, &agent, user, changes).await;
    let (card, text, buttons) = shown(&app, user, "📝 hello changed 1 file (+1 −0)").await;
    assert!(text.ends_with("on branch ra/hello/x1"), "{text}");
    app.press_on(user, card, data(&buttons, "🔍 Diff")).await;
    let _ = next_checkpoint(&app, &mut sub, &agent).await;
    app.expect_message(
        user,
        "hello did not answer 🔍 Diff; is its daemon up to date?",
    )
    .await;
    app.finish().await;
}
