//! Photos and documents sent to the bot: fetched from the fake Bot API,
//! stored as blobs of the agent, and carried by the next prompt's signed
//! command; limits, expiry and albums.
//!
//! That a message published nothing is shown by order, not by waiting:
//! a user's updates are handled in order, so when the next prompt of the
//! same user is the next command on the channel, nothing came before it.

use crate::support;

use redis::aio::PubSub;
use remoteagent_proto::events::{CommandEvent, CommandPayload};
use remoteagent_proto::files::{Attachment, BLOB_TTL_SECS};
use remoteagent_proto::{AgentId, envelope, names};
use remoteagent_testkit::telegram::{BOT_USERNAME, FakeFile, updates};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Backend, TestApp, next_message, user_id};

/// The next prompt's command; its run is ended at once, as a daemon
/// would, so that the next prompt is not queued behind it.
async fn next_prompt(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> CommandPayload {
    let token = next_message(sub).await;
    match envelope::verify(&app.state.key.public_key(), agent, &token)
        .unwrap()
        .command
    {
        CommandEvent::Command(c) => {
            app.end_run(agent, &c.session_id).await;
            c
        }
        other => panic!("expected a command, got {other:?}"),
    }
}

async fn deliver(app: &TestApp, update: &Value) {
    let response = app.webhook(update).await;
    assert_eq!(response.status(), 200);
}

fn bytes_of(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `user` sends a photo of `bytes` in their private chat.
async fn photo(app: &TestApp, user: i64, bytes: &[u8], caption: Option<&str>) -> Vec<FakeFile> {
    let sizes = app.tg.add_photo(bytes.to_vec());
    deliver(
        app,
        &updates::photo(app.update_id(), user, user, &sizes, caption),
    )
    .await;
    sizes
}

/// `user` sends `bytes` as a document named `name`.
async fn document(app: &TestApp, user: i64, bytes: &[u8], name: &str, caption: Option<&str>) {
    let file = app.tg.add_file(bytes.to_vec(), "documents", "bin");
    deliver(
        app,
        &updates::document(
            app.update_id(),
            user,
            user,
            &file,
            name,
            "application/pdf",
            caption,
        ),
    )
    .await;
}

async fn admin(app: &TestApp) -> redis::aio::MultiplexedConnection {
    app.redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap()
}

async fn blob(app: &TestApp, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut admin(app).await)
        .await
        .unwrap()
}

async fn blob_keys(app: &TestApp) -> Vec<String> {
    redis::cmd("KEYS")
        .arg("blob:*")
        .query_async(&mut admin(app).await)
        .await
        .unwrap()
}

/// The attachment is in Redis under the agent's key, with these bytes and
/// a TTL.
async fn assert_stored(app: &TestApp, agent: &AgentId, a: &Attachment, bytes: &[u8]) {
    assert!(names::is_blob_key_of(agent, &a.key), "{}", a.key);
    assert_eq!(a.size, bytes.len() as u64);
    assert_eq!(a.sha256, sha256(bytes));
    assert_eq!(blob(app, &a.key).await.as_deref(), Some(bytes));
    let ttl: i64 = redis::cmd("TTL")
        .arg(&a.key)
        .query_async(&mut admin(app).await)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= BLOB_TTL_SECS as i64, "ttl {ttl}");
}

const ASK: &str = "Send your answer as a message.";

async fn a_captioned_photo_runs_at_once_with_its_largest_size(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "proj").await;
    let bytes = bytes_of(300_000, 1);
    let sizes = photo(app, user, &bytes, Some("what is on this screen?")).await;
    let cmd = next_prompt(app, &mut sub, &agent).await;
    assert_eq!(cmd.prompt, "what is on this screen?");
    assert_eq!(cmd.attachments.len(), 1);
    let a = &cmd.attachments[0];
    assert_eq!(a.name, format!("photo-{}.jpg", &sha256(&bytes)[..8]));
    assert_eq!(a.mime, "image/jpeg");
    assert_stored(app, &agent, a, &bytes).await;
    // Only the largest size was downloaded.
    assert_eq!(app.tg.downloads(), vec![sizes[2].file_path.clone()]);

    // A plain prompt afterwards carries nothing.
    app.say(user, "and now?").await;
    let cmd = next_prompt(app, &mut sub, &agent).await;
    assert_eq!(cmd.prompt, "and now?");
    assert!(cmd.attachments.is_empty());
}

async fn files_without_a_caption_wait_for_the_next_message(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    let report = bytes_of(5000, 2);
    document(app, user, &report, "../../Q3 report.pdf", None).await;
    app.expect_message(
        user,
        &format!("📎 Got Q3 report.pdf for hello. What should it do with it? {ASK}"),
    )
    .await;
    let shot = bytes_of(2000, 3);
    photo(app, user, &shot, None).await;
    let name = format!("photo-{}.jpg", &sha256(&shot)[..8]);
    app.expect_message(
        user,
        &format!(
            "📎 Got {name} for hello (2 files are waiting). What should it do with them? {ASK}"
        ),
    )
    .await;
    app.say(user, "compare these").await;
    let cmd = next_prompt(app, &mut sub, &agent).await;
    assert_eq!(cmd.prompt, "compare these");
    let names: Vec<&str> = cmd.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, vec!["Q3 report.pdf", name.as_str()]);
    assert_eq!(cmd.attachments[0].mime, "application/pdf");
    assert_stored(app, &agent, &cmd.attachments[0], &report).await;
    assert_stored(app, &agent, &cmd.attachments[1], &shot).await;
    // They went with that prompt, not the next.
    app.say(user, "thanks").await;
    assert!(
        next_prompt(app, &mut sub, &agent)
            .await
            .attachments
            .is_empty()
    );
}

/// While the agent is busy with a run, a prompt that would take files is
/// not queued (the files would expire in the queue): it is refused in
/// words, and the files stay waiting for the prompt sent after the run.
async fn a_prompt_with_files_is_not_queued(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    app.say(user, "first").await;
    let token = next_message(&mut sub).await;
    let CommandEvent::Command(first) =
        envelope::verify(&app.state.key.public_key(), &agent, &token)
            .unwrap()
            .command
    else {
        panic!("expected a command");
    };
    let shot = bytes_of(2000, 4);
    photo(app, user, &shot, None).await;
    app.expect_message(user, "What should it do with it?").await;
    app.say(user, "describe it").await;
    let refused = app
        .expect_message(user, "a prompt with files does not wait in the queue")
        .await;
    assert_eq!(
        refused,
        "📎 hello is busy with a run, and a prompt with files does not wait in the queue (files \
are kept only 15 minutes). Nothing was queued; your files are still waiting: send your prompt \
again when the run ends."
    );
    assert_eq!(
        remoteagent_cloud::db::queue::count(&app.state.db, &agent)
            .await
            .unwrap(),
        0
    );
    app.end_run(&agent, &first.session_id).await;
    app.say(user, "describe it").await;
    let cmd = next_prompt(app, &mut sub, &agent).await;
    assert_eq!(cmd.prompt, "describe it");
    assert_eq!(cmd.attachments.len(), 1);
    assert_stored(app, &agent, &cmd.attachments[0], &shot).await;
}

both_backends!(
    a_captioned_photo_runs_at_once_with_its_largest_size,
    files_without_a_caption_wait_for_the_next_message,
    a_prompt_with_files_is_not_queued,
);

/// An album: one message per photo, the caption on the first; one prompt
/// with all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_album_is_one_prompt() {
    let app = TestApp::start(Backend::Sqlite).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "proj").await;
    let pictures: Vec<Vec<u8>> = (0..3).map(|i| bytes_of(1000 + i, i as u8)).collect();
    for (i, bytes) in pictures.iter().enumerate() {
        let sizes = app.tg.add_photo(bytes.clone());
        let caption = (i == 0).then_some("which one is best?");
        let mut update = updates::photo(app.update_id(), user, user, &sizes, caption);
        update["message"]["media_group_id"] = json!("13562480123456789");
        deliver(&app, &update).await;
    }
    let cmd = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(cmd.prompt, "which one is best?");
    assert_eq!(cmd.attachments.len(), 3);
    for (a, bytes) in cmd.attachments.iter().zip(&pictures) {
        assert_stored(&app, &agent, a, bytes).await;
    }

    // Without a caption, one question for the whole album.
    for i in 0..2u8 {
        let sizes = app.tg.add_photo(bytes_of(500, 10 + i));
        let mut update = updates::photo(app.update_id(), user, user, &sizes, None);
        update["message"]["media_group_id"] = json!("99");
        deliver(&app, &update).await;
    }
    app.expect_message(
        user,
        &format!("📎 Got 2 files for proj. What should it do with them? {ASK}"),
    )
    .await;
    app.say(user, "describe").await;
    let cmd = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(cmd.attachments.len(), 2);
    assert_eq!(app.count_messages(user, "📎 Got"), 1);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limits_a_file_is_refused_in_words_and_nothing_is_stored() {
    let app = TestApp::start_with(
        Backend::Sqlite,
        &[
            ("ATTACHMENTS_MAX_FILES", "2"),
            ("ATTACHMENTS_MAX_TOTAL_MB", "1"),
        ],
    )
    .await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "proj").await;

    // Bigger than Telegram lets bots download: not even asked for.
    let huge = app.tg.add_file(vec![7u8; 23_400_000], "documents", "zip");
    deliver(
        &app,
        &updates::document(
            app.update_id(),
            user,
            user,
            &huge,
            "dump.zip",
            "application/zip",
            Some("unpack it"),
        ),
    )
    .await;
    app.expect_message(
        user,
        "That file is 23.4 MB; Telegram lets bots download at most 20 MB. Nothing ran.",
    )
    .await;
    assert!(app.tg.calls_of("getFile").is_empty());

    // Over the total size.
    document(&app, user, &bytes_of(1_200_000, 4), "big.pdf", None).await;
    app.expect_message(
        user,
        "big.pdf is 1.2 MB; a prompt can carry at most 1 MB of files. It was not kept.",
    )
    .await;
    assert!(blob_keys(&app).await.is_empty());

    // Over the count: the third file is refused, the first two wait.
    document(&app, user, b"one", "a.pdf", None).await;
    document(&app, user, b"two", "b.pdf", None).await;
    document(&app, user, b"three", "c.pdf", Some("all three")).await;
    app.expect_message(
        user,
        "A prompt can carry at most 2 files, and 2 are already waiting for your message; c.pdf \
was not kept. Send your message for them first. Nothing ran.",
    )
    .await;
    assert_eq!(blob_keys(&app).await.len(), 2);
    app.say(user, "the two").await;
    let cmd = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(cmd.prompt, "the two");
    let names: Vec<&str> = cmd.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, vec!["a.pdf", "b.pdf"]);
    app.finish().await;
}

/// The record of waiting files, as the cloud keeps it.
fn record_key(user: i64) -> String {
    format!("ra:attach:{user}:{user}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_never_silently_left_out() {
    let app = TestApp::start(Backend::Sqlite).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "proj").await;

    // Lost before its time (Redis dropped the blob): nothing runs.
    document(&app, user, b"contents", "notes.txt", None).await;
    app.expect_message(user, "📎 Got notes.txt").await;
    for key in blob_keys(&app).await {
        redis::cmd("DEL")
            .arg(key)
            .query_async::<i64>(&mut admin(&app).await)
            .await
            .unwrap();
    }
    app.say(user, "summarize").await;
    app.expect_message(
        user,
        "⚠️ notes.txt could not be found any more (the bot's storage lost it). Nothing ran: \
please send it again, then your message.",
    )
    .await;
    app.say(user, "hello?").await;
    let cmd = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(cmd.prompt, "hello?", "the lost file's prompt ran");
    assert!(cmd.attachments.is_empty());

    // Waited too long: the prompt runs without it, and says so.
    document(&app, user, b"old", "old.txt", None).await;
    app.expect_message(user, "📎 Got old.txt").await;
    let mut conn = admin(&app).await;
    let raw: String = redis::cmd("GET")
        .arg(record_key(user))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut record: Value = serde_json::from_str(&raw).unwrap();
    let key = record["files"][0]["attachment"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let stored_at = record["files"][0]["stored_at"].as_u64().unwrap();
    record["files"][0]["stored_at"] = json!(stored_at - BLOB_TTL_SECS - 1);
    redis::cmd("SET")
        .arg(record_key(user))
        .arg(record.to_string())
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    redis::cmd("DEL")
        .arg(&key)
        .query_async::<i64>(&mut conn)
        .await
        .unwrap();
    app.say(user, "anything new?").await;
    let cmd = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(cmd.prompt, "anything new?");
    assert!(cmd.attachments.is_empty());
    app.expect_message(
        user,
        "⌛ old.txt waited more than 15 minutes for your message and expired; this prompt runs \
without it.",
    )
    .await;
    app.finish().await;
}

/// `/use` keeps waiting files: they go to the agent the prompt is for,
/// under its keys (an agent reads only its own blobs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_files_follow_the_prompt_to_the_agent_chosen_with_use() {
    let app = TestApp::start(Backend::Sqlite).await;
    let user = user_id();
    let (first, _first_sub) = app.online_agent(user, "first").await;
    let (second, mut second_sub) = app.online_agent(user, "second").await;
    app.say(user, "/use first").await;
    app.expect_message(user, "Now talking to first").await;
    let bytes = bytes_of(4000, 9);
    document(&app, user, &bytes, "spec.pdf", None).await;
    app.expect_message(user, "📎 Got spec.pdf for first").await;
    assert!(names::is_blob_key_of(&first, &blob_keys(&app).await[0]));
    app.say(user, "/use second").await;
    app.say(user, "implement it").await;
    let cmd = next_prompt(&app, &mut second_sub, &second).await;
    assert_eq!(cmd.prompt, "implement it");
    assert_eq!(cmd.attachments.len(), 1);
    assert_stored(&app, &second, &cmd.attachments[0], &bytes).await;
    assert_eq!(blob_keys(&app).await.len(), 1, "the blob moved, not copied");
    app.finish().await;
}

/// A group reads files by its rules: only the owner's, addressed to the
/// bot, in a group opted in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_group_a_file_must_be_addressed_to_the_bot() {
    let app = TestApp::start(Backend::Sqlite).await;
    let owner = user_id();
    let (agent, mut sub) = app.online_agent(owner, "proj").await;
    let group = -(1_000_000_000_000 + i64::from(rand::random::<u32>()));
    let in_group = |mut update: Value| {
        update["message"]["chat"] = json!({"id": group, "type": "supergroup", "title": "G"});
        update
    };
    let allow = updates::group_text(app.update_id(), owner, group, "/allowgroup");
    deliver(&app, &allow).await;
    app.expect_message(group, "This group is opted in for proj")
        .await;

    // Not addressed: ignored (nothing downloaded).
    let sizes = app.tg.add_photo(bytes_of(800, 5));
    deliver(
        &app,
        &in_group(updates::photo(
            app.update_id(),
            owner,
            owner,
            &sizes,
            Some("holiday"),
        )),
    )
    .await;
    // Addressed by a mention in the caption: a prompt, mention stripped.
    let bytes = bytes_of(900, 6);
    let sizes = app.tg.add_photo(bytes.clone());
    deliver(
        &app,
        &in_group(updates::photo(
            app.update_id(),
            owner,
            owner,
            &sizes,
            Some(&format!("@{BOT_USERNAME} what is this?")),
        )),
    )
    .await;
    let cmd = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(cmd.prompt, "what is this?");
    assert_eq!(cmd.attachments.len(), 1);
    assert_stored(&app, &agent, &cmd.attachments[0], &bytes).await;
    assert_eq!(
        app.tg.downloads().len(),
        1,
        "the unaddressed photo was fetched"
    );
    app.finish().await;
}
