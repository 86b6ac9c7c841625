//! `/get PATH` in the cloud: the signed `get_file` command, and the answer
//! a daemon writes (here written by the test, as the daemon would: a blob,
//! `started`, `notice`, `file`, `done`) turned into messages and a document
//! in the strict fake Telegram.

use redis::aio::PubSub;
use remoteagent_proto::events::{
    CommandEvent, DonePayload, DoneStatus, NoticePayload, OutputEvent, StartedPayload,
};
use remoteagent_proto::files::{Attachment, FileOrigin, FilePayload, GetFilePayload};
use remoteagent_proto::{AgentId, envelope, names, now_ms};
use remoteagent_testkit::wait_for;
use sha2::{Digest, Sha256};

use crate::support::{Backend, TIMEOUT, TestApp, next_message, user_id};

async fn next_get(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> GetFilePayload {
    let token = next_message(sub).await;
    let claims = envelope::verify(&app.state.key.public_key(), agent, &token).unwrap();
    match claims.command {
        CommandEvent::GetFile(g) => g,
        other => panic!("expected get_file, got {other:?}"),
    }
}

pub(crate) async fn conn(app: &TestApp) -> redis::aio::MultiplexedConnection {
    app.redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap()
}

/// Writes `events` to the answer's stream, as the daemon does.
async fn answer(app: &TestApp, agent: &AgentId, get: &GetFilePayload, events: &[OutputEvent]) {
    let mut c = conn(app).await;
    let stream = names::output_stream(agent, &get.session_id);
    for event in events {
        redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg(names::STREAM_FIELD)
            .arg(serde_json::to_string(event).unwrap())
            .query_async::<String>(&mut c)
            .await
            .unwrap();
    }
}

fn started(agent: &AgentId, get: &GetFilePayload) -> OutputEvent {
    OutputEvent::Started(StartedPayload {
        session_id: get.session_id.clone(),
        agent_id: agent.clone(),
        runner: "/get".into(),
        started_at_ms: now_ms(),
        mode: None,
    })
}

fn done(status: DoneStatus, message: Option<&str>) -> OutputEvent {
    OutputEvent::Done(DonePayload {
        status,
        exit_code: None,
        duration_ms: 3,
        message: message.map(str::to_string),
        chunks: 0,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    })
}

/// Stores `stored` in a blob of `agent`, described as `bytes`.
pub(crate) async fn blob(
    app: &TestApp,
    agent: &AgentId,
    name: &str,
    bytes: &[u8],
    stored: &[u8],
) -> Attachment {
    let key = names::blob_key(agent, &format!("{:032x}", rand::random::<u128>()));
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(stored)
        .arg("EX")
        .arg(900)
        .query_async(&mut conn(app).await)
        .await
        .unwrap();
    Attachment {
        key,
        name: name.into(),
        mime: "text/plain".into(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

async fn exists(app: &TestApp, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(&mut conn(app).await)
        .await
        .unwrap()
        > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_the_daemon_answers_with_arrives_as_a_document_and_its_blob_is_deleted() {
    let app = TestApp::start(Backend::Sqlite).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;

    app.say(user, "/get").await;
    app.expect_message(user, "/get PATH").await;
    app.say(user, "/help").await;
    app.expect_message(user, "/get PATH — a file of the project")
        .await;

    app.say(user, "/get src/main.rs").await;
    let get = next_get(&app, &mut sub, &agent).await;
    assert_eq!(get.path, "src/main.rs");
    let bytes = b"fn main() {\n    println!(\"<hello> & bye\");\n}\n";
    let file = blob(&app, &agent, "main.rs", bytes, bytes).await;
    answer(
        &app,
        &agent,
        &get,
        &[
            started(&agent, &get),
            OutputEvent::Notice(NoticePayload {
                text: "main.rs: a <note> first".into(),
            }),
            OutputEvent::File(FilePayload {
                file: file.clone(),
                origin: FileOrigin::Get,
            }),
            done(DoneStatus::Ok, None),
        ],
    )
    .await;
    let docs = wait_for(TIMEOUT, || {
        let d = app.tg.documents_in(user);
        async move { (!d.is_empty()).then_some(d) }
    })
    .await
    .expect("a document");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].file_name, "main.rs");
    assert_eq!(docs[0].bytes, bytes);
    assert_eq!(
        docs[0].caption.as_deref(),
        Some("📎 src/main.rs from hello")
    );
    app.expect_message(user, "main.rs: a <note> first").await;
    let gone = wait_for(TIMEOUT, || async {
        (!exists(&app, &file.key).await).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the blob is deleted once sent");
    // The notice came before the document.
    let notice = app
        .tg
        .messages(user)
        .into_iter()
        .find(|m| m.text.contains("a <note> first"))
        .unwrap();
    assert!(notice.message_id < docs[0].message_id);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_shown_and_a_file_that_differs_is_not_sent() {
    let app = TestApp::start(Backend::Sqlite).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;

    // A refusal: the daemon's words, once.
    app.say(user, "/get ../secret").await;
    let get = next_get(&app, &mut sub, &agent).await;
    let refusal = "/get ../secret: outside the project, refused";
    answer(
        &app,
        &agent,
        &get,
        &[
            started(&agent, &get),
            OutputEvent::Notice(NoticePayload {
                text: refusal.into(),
            }),
            done(DoneStatus::Rejected, Some(refusal)),
        ],
    )
    .await;
    app.expect_message(user, refusal).await;

    // A blob whose bytes are not the ones described.
    app.say(user, "/get notes.txt").await;
    let get = next_get(&app, &mut sub, &agent).await;
    let file = blob(&app, &agent, "notes.txt", b"the notes", b"the n0tes").await;
    answer(
        &app,
        &agent,
        &get,
        &[
            started(&agent, &get),
            OutputEvent::File(FilePayload {
                file: file.clone(),
                origin: FileOrigin::Get,
            }),
            done(DoneStatus::Ok, None),
        ],
    )
    .await;
    app.expect_message(
        user,
        "notes.txt could not be sent: it did not arrive intact",
    )
    .await;
    // Another agent's blob named in an event is neither sent nor deleted.
    app.say(user, "/get other.txt").await;
    let get = next_get(&app, &mut sub, &agent).await;
    let stranger = AgentId::generate();
    let foreign = blob(&app, &stranger, "other.txt", b"theirs", b"theirs").await;
    answer(
        &app,
        &agent,
        &get,
        &[
            started(&agent, &get),
            OutputEvent::File(FilePayload {
                file: foreign.clone(),
                origin: FileOrigin::Get,
            }),
            done(DoneStatus::Ok, None),
        ],
    )
    .await;
    app.expect_message(
        user,
        "other.txt could not be sent: the event describing it is not valid",
    )
    .await;
    assert!(
        exists(&app, &foreign.key).await,
        "another agent's blob is left alone"
    );
    assert!(app.tg.documents_in(user).is_empty());
    assert_eq!(app.count_messages(user, refusal), 1, "said once");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_never_answers_and_an_offline_agent_are_told() {
    let app = TestApp::start_with(Backend::Sqlite, &[("GET_ANSWER_SECS", "1")]).await;
    let user = user_id();
    // Subscribed and present, as an older daemon that skips the command.
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    app.say(user, "/get src/main.rs").await;
    let _ = next_get(&app, &mut sub, &agent).await;
    app.expect_message(
        user,
        "hello did not answer /get src/main.rs; is its daemon up to date?",
    )
    .await;

    // Offline: no presence key, nobody subscribed.
    drop(sub);
    redis::cmd("DEL")
        .arg(names::presence_key(&agent))
        .query_async::<i64>(&mut conn(&app).await)
        .await
        .unwrap();
    app.say(user, "/get src/main.rs").await;
    app.expect_message(user, "hello is offline").await;
    app.finish().await;
}
