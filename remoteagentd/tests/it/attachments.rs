//! Files sent with a prompt, on the execution side: a signed command names
//! blobs in a real Redis, the real agent task fetches and checks them, and a
//! real script runner reads them from the session's inbox.

use crate::execution_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use execution_support::*;
use remoteagent_proto::events::{CommandEvent, CommandPayload, DoneStatus, OutputEvent};
use remoteagent_proto::files::Attachment;
use remoteagent_proto::{SessionId, names};
use remoteagent_testkit::wait_for;
use remoteagentd::agent::{AgentHandle, AgentSettings};
use remoteagentd::inbox::{AttachmentLimits, session_dir};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn described(s: &Setup, blob: &str, name: &str, mime: &str, bytes: &[u8]) -> Attachment {
    Attachment {
        key: names::blob_key(&s.agent, blob),
        name: name.into(),
        mime: mime.into(),
        size: bytes.len() as u64,
        sha256: sha256(bytes),
    }
}

async fn store(s: &Setup, key: &str, bytes: &[u8]) {
    redis::cmd("SET")
        .arg(key)
        .arg(bytes)
        .arg("EX")
        .arg(900)
        .query_async::<()>(&mut s.admin.clone())
        .await
        .unwrap();
}

fn with_files(sid: &SessionId, prompt: &str, files: Vec<Attachment>) -> CommandEvent {
    CommandEvent::Command(CommandPayload {
        session_id: sid.clone(),
        prompt: prompt.into(),
        r#continue: false,
        attachments: files,
        mode: None,
        resume: None,
    })
}

fn stdout(events: &[OutputEvent]) -> String {
    chunk_text(events)
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

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_reach_the_runner_from_a_private_inbox_outside_the_project() {
    let s = Setup::new().await;
    let _agent = s.spawn(s.spec(vec![fixture("attached.sh")])).await;
    let photo: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let notes = b"line one\nline two\n".to_vec();
    let files = vec![
        described(&s, "b1", "photo-1a2b.jpg", "image/jpeg", &photo),
        described(&s, "b2", "../notes.txt", "text/plain", &notes),
        described(&s, "b3", "notes.txt", "text/plain", b"again"),
    ];
    store(&s, &files[0].key, &photo).await;
    store(&s, &files[1].key, &notes).await;
    store(&s, &files[2].key, b"again").await;
    let sid = SessionId::generate();
    s.send(with_files(&sid, "what is in these?", files.clone()))
        .await;
    let events = s.wait_done(&sid).await;
    assert_eq!(
        done_of(&events).status,
        DoneStatus::Ok,
        "{:?}",
        notices(&events)
    );

    let dir = session_dir(&s.settings.inbox.root, &s.agent, &sid);
    let out = stdout(&events);
    for (name, bytes) in [
        ("photo-1a2b.jpg", &photo[..]),
        ("notes.txt", &notes[..]),
        ("notes-2.txt", b"again"),
    ] {
        let line = format!(
            "file={} sha256={} mode=600 bytes={}",
            dir.join(name).display(),
            sha256(bytes),
            bytes.len()
        );
        assert!(out.contains(&line), "no {line:?} in:\n{out}");
    }
    assert!(
        out.contains(&format!(
            "prompt=[what is in these?\n\nAttached files:\n- {} (image/jpeg, 200 KB)\n",
            dir.join("photo-1a2b.jpg").display()
        )),
        "{out}"
    );
    assert!(!dir.starts_with(s.project.path()));
    // The log names the files, after the runner record (its second line,
    // which a restarted daemon reads to end what a crash left running).
    let log = std::fs::read_to_string(s.log_path(&sid)).unwrap();
    assert!(
        log.contains(&format!(
            "# attached: {}",
            dir.join("notes-2.txt").display()
        )),
        "{log}"
    );
    assert!(
        remoteagentd::session_log::runner_record(&s.log_path(&sid))
            .unwrap()
            .is_some(),
        "{log}"
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    // The blobs are gone once saved.
    let left: i64 = redis::cmd("EXISTS")
        .arg(&files[0].key)
        .arg(&files[1].key)
        .arg(&files[2].key)
        .query_async(&mut s.admin.clone())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// A refused command: `done {rejected}` naming why, and nothing
/// of the session (no `started`, no log, no inbox, the runner never ran).
/// Returns once the agent is free again (a session's `done` is written
/// just before its slot is freed).
async fn assert_refused(s: &Setup, agent: &AgentHandle, sid: &SessionId, expected: &str) {
    let events = s.wait_done(sid).await;
    let idle = wait_for(WAIT, || {
        let free = agent.running_session().is_none();
        async move { free.then_some(()) }
    })
    .await;
    assert!(idle.is_some(), "the agent stayed busy after a refusal");
    let done = done_of(&events);
    assert_eq!(done.status, DoneStatus::Rejected);
    // Said once, in `done` (the cloud's status line), not also as a notice.
    let said = done.message.clone().unwrap_or_default();
    assert!(said.contains(expected), "no {expected:?} in {said:?}");
    assert!(notices(&events).is_empty(), "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(e, OutputEvent::Started(_))),
        "{events:?}"
    );
    assert!(!s.log_path(sid).exists(), "a refused session has no log");
    assert!(!session_dir(&s.settings.inbox.root, &s.agent, sid).exists());
    assert!(!s.project.path().join("ran.txt").exists(), "the runner ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_after_it_was_sent_refuses_the_whole_command() {
    let s = Setup::new().await;
    let agent = s.spawn(s.spec(vec![fixture("attached.sh")])).await;
    let good = described(&s, "good", "fine.txt", "text/plain", b"fine");
    store(&s, &good.key, b"fine").await;
    let report = described(&s, "t1", "report.pdf", "application/pdf", b"original");
    // Same length, other bytes: only the hash tells.
    store(&s, &report.key, b"Original").await;
    let sid = SessionId::generate();
    s.send(with_files(&sid, "summarize", vec![good.clone(), report]))
        .await;
    assert_refused(
        &s,
        &agent,
        &sid,
        "the attached file report.pdf does not match its SHA-256: it was changed after it was sent; nothing ran",
    )
    .await;

    // A missing blob, and one of another agent: the same.
    let gone = described(&s, "gone", "old.png", "image/png", b"x");
    let sid = SessionId::generate();
    s.send(with_files(&sid, "look", vec![gone])).await;
    assert_refused(
        &s,
        &agent,
        &sid,
        "the attached file old.png is no longer stored",
    )
    .await;
    let mut foreign = good.clone();
    foreign.key = names::blob_key(&remoteagent_proto::AgentId::generate(), "b1");
    let sid = SessionId::generate();
    s.send(with_files(&sid, "look", vec![foreign])).await;
    assert_refused(&s, &agent, &sid, "fine.txt is not stored for this agent").await;

    // The agent still runs the next prompt with a good file.
    let sid = SessionId::generate();
    s.send(with_files(&sid, "now", vec![good])).await;
    let events = s.wait_done(&sid).await;
    assert_eq!(done_of(&events).status, DoneStatus::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_own_limits_refuse_absurd_commands() {
    let mut s = Setup::new().await;
    let mut settings: AgentSettings = (*s.settings).clone();
    settings.inbox.limits = AttachmentLimits {
        max_files: 2,
        max_total_bytes: 1000,
    };
    s.settings = Arc::new(settings);
    let agent = s.spawn(s.spec(vec![fixture("attached.sh")])).await;
    let small = described(&s, "b1", "a.txt", "text/plain", b"a");
    let sid = SessionId::generate();
    s.send(with_files(
        &sid,
        "go",
        vec![small.clone(), small.clone(), small.clone()],
    ))
    .await;
    assert_refused(
        &s,
        &agent,
        &sid,
        "3 files came with the prompt; this daemon takes at most 2 per prompt ([attachments] max_files); nothing ran",
    )
    .await;
    let mut big = small.clone();
    big.size = 5000;
    let sid = SessionId::generate();
    s.send(with_files(&sid, "go", vec![big])).await;
    assert_refused(
        &s,
        &agent,
        &sid,
        "hold 5 KB; this daemon takes at most 1 KB per prompt ([attachments] max_total_mb)",
    )
    .await;
}
