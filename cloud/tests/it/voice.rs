//! Voice notes: downloaded from the fake Bot API, transcribed by the fake
//! speech-to-text server (`remoteagent_testkit::stt`), shown with ▶ Run /
//! ✎ Edit / ✖ Cancel, and sent to the agent as a signed command only when
//! their sender presses Run.

use crate::support;

use redis::aio::PubSub;
use remoteagent_cloud::bot::voice::{EXPIRED, NEEDS_STT, NOT_YOURS, SEND_CORRECTED};
use remoteagent_proto::events::CommandEvent;
use remoteagent_proto::{AgentId, envelope, names};
use remoteagent_testkit::stt::FakeStt;
use remoteagent_testkit::telegram::{FakeFile, FakeMessage, updates};
use serde_json::Value;
use support::{Backend, TIMEOUT, TestApp, next_message, user_id};

const KEY: &str = "sk-test-voice-0123456789";
/// Opus in an Ogg container starts so; the fake transcribes anything.
const OGG: &[u8] = b"OggS\0\x02voice note bytes";

/// The cloud, pointed at `stt` with [`KEY`] (its time limit generous: only
/// the timeout test shortens it).
async fn start(backend: Backend, stt: &FakeStt, extra: &[(&str, &str)]) -> TestApp {
    let url = stt.base_url();
    let mut pairs = vec![
        ("STT_URL", url.as_str()),
        ("STT_API_KEY", KEY),
        ("STT_TIMEOUT_SECS", "20"),
    ];
    pairs.extend_from_slice(extra);
    TestApp::start_with(backend, &pairs).await
}

async fn fake_stt() -> FakeStt {
    let stt = FakeStt::start().await;
    stt.require_key(KEY);
    stt
}

/// `user` sends a voice note of `bytes`; returns the file the fake holds.
async fn send_voice(app: &TestApp, user: i64, bytes: &[u8]) -> FakeFile {
    let file = app.tg.add_file(bytes.to_vec(), "voice", "oga");
    deliver(app, &updates::voice(app.update_id(), user, user, &file, 3)).await;
    file
}

async fn deliver(app: &TestApp, update: &Value) {
    let response = app.webhook(update).await;
    assert_eq!(response.status(), 200);
}

/// Waits for the bot's message in `chat` that `pred` accepts.
async fn wait_message(
    app: &TestApp,
    chat: i64,
    what: &str,
    pred: impl Fn(&FakeMessage) -> bool,
) -> FakeMessage {
    let found = app
        .tg
        .wait_for_messages(chat, |m| m.iter().any(&pred), TIMEOUT)
        .await;
    let messages = app.tg.messages(chat);
    assert!(found, "no message {what} in chat {chat}: {messages:#?}");
    messages.into_iter().rev().find(|m| pred(m)).unwrap()
}

/// The transcript's message for `agent`, with its buttons.
async fn transcript(app: &TestApp, chat: i64, agent: &str) -> FakeMessage {
    let heading = format!("🎙 For {agent}: “");
    wait_message(app, chat, "with the transcript and its buttons", |m| {
        m.text.starts_with(&heading) && m.reply_markup.is_some()
    })
    .await
}

/// `(text, callback_data)` of each button under `message`.
fn buttons(message: &FakeMessage) -> Vec<(String, String)> {
    let markup = message.reply_markup.as_ref().expect("buttons");
    markup["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|b| {
            (
                b["text"].as_str().unwrap().to_string(),
                b["callback_data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn data_of(message: &FakeMessage, label: &str) -> String {
    buttons(message)
        .into_iter()
        .find(|(text, _)| text.contains(label))
        .unwrap_or_else(|| panic!("no {label} button: {message:?}"))
        .1
}

/// The next prompt published to `agent`, verified as the daemon does.
async fn next_prompt(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> String {
    let token = next_message(sub).await;
    let claims = envelope::verify(&app.state.key.public_key(), agent, &token).unwrap();
    match claims.command {
        CommandEvent::Command(c) => c.prompt,
        other => panic!("expected a command, got {other:?}"),
    }
}

/// The message once its buttons are gone.
async fn without_buttons(app: &TestApp, chat: i64, message_id: i64) -> FakeMessage {
    let gone = app
        .tg
        .wait_for_messages(
            chat,
            |m| {
                m.iter()
                    .any(|m| m.message_id == message_id && m.reply_markup.is_none())
            },
            TIMEOUT,
        )
        .await;
    let message = app.tg.message(chat, message_id).unwrap();
    assert!(gone, "the buttons stayed: {message:?}");
    message
}

async fn a_voice_note_runs_after_run(backend: Backend) {
    let stt = fake_stt().await;
    let app = start(
        backend,
        &stt,
        &[("STT_MODEL", "Systran/faster-whisper-small")],
    )
    .await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    stt.set_transcript("fix the <failing> test & parser.rs");
    let file = send_voice(&app, user, OGG).await;

    let shown = transcript(&app, user, "hello").await;
    assert_eq!(
        shown.text,
        "🎙 For hello: “fix the <failing> test & parser.rs”"
    );
    let labels: Vec<String> = buttons(&shown).into_iter().map(|b| b.0).collect();
    assert_eq!(labels, ["▶ Run", "✎ Edit", "✖ Cancel"]);
    // The upload: the file Telegram served, named so that its format shows,
    // the model asked for, the key as a bearer token.
    assert_eq!(app.tg.downloads(), vec![file.file_path.clone()]);
    let requests = stt.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.file, OGG);
    let expected_name = file.file_path.rsplit('/').next().unwrap();
    assert_eq!(request.file_name.as_deref(), Some(expected_name));
    assert!(expected_name.ends_with(".oga"));
    assert_eq!(request.content_type.as_deref(), Some("audio/ogg"));
    assert_eq!(
        request.model.as_deref(),
        Some("Systran/faster-whisper-small")
    );
    assert_eq!(request.response_format.as_deref(), Some("json"));
    assert_eq!(request.bearer.as_deref(), Some(KEY));
    assert_eq!(request.status, 200);

    // The transcript waits in Redis for a day, under an id in the buttons.
    let run = data_of(&shown, "Run");
    let id = run.strip_prefix("voice:run:").unwrap();
    let mut conn = remoteagent_testkit::redis_conn(&app.redis_url).await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("ra:voice:{id}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 86_000 && ttl <= 86_400, "{ttl}");

    let answer = app.press_on(user, shown.message_id, &run).await;
    assert_eq!(answer, "Sent to hello.");
    assert_eq!(
        next_prompt(&app, &mut sub, &agent).await,
        "fix the <failing> test & parser.rs"
    );
    let settled = without_buttons(&app, user, shown.message_id).await;
    assert!(
        settled.text.ends_with("▶ Sent to hello."),
        "{}",
        settled.text
    );
    // The session runs like a typed one.
    app.expect_message(user, "hello is working").await;
    // Taken once: a second press runs nothing.
    assert_eq!(app.press_on(user, shown.message_id, &run).await, EXPIRED);
    // Nothing went to Telegram that it refused.
    assert!(
        app.tg.refused_calls().is_empty(),
        "{:#?}",
        app.tg.refused_calls()
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_runs_after_run_on_sqlite() {
    a_voice_note_runs_after_run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_runs_after_run_on_postgres() {
    a_voice_note_runs_after_run(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_file_is_sent_with_its_own_name_and_type() {
    let stt = fake_stt().await;
    let app = start(Backend::Sqlite, &stt, &[]).await;
    let user = user_id();
    app.online_agent(user, "hello").await;
    let file = app.tg.add_file(b"ID3 mp3 bytes".to_vec(), "music", "mp3");
    let update = updates::audio(
        app.update_id(),
        user,
        user,
        &file,
        "standup memo.mp3",
        "audio/mpeg",
        40,
    );
    deliver(&app, &update).await;
    transcript(&app, user, "hello").await;
    let request = &stt.requests()[0];
    assert_eq!(request.file, b"ID3 mp3 bytes");
    assert_eq!(request.file_name.as_deref(), Some("standup memo.mp3"));
    assert_eq!(request.content_type.as_deref(), Some("audio/mpeg"));
    assert_eq!(
        request.model.as_deref(),
        Some("whisper-1"),
        "the default model"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_gives_the_transcript_to_copy_and_the_next_text_is_the_prompt() {
    let stt = fake_stt().await;
    let app = start(Backend::Sqlite, &stt, &[]).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    stt.set_transcript("fix the failing test in parser.r s");
    send_voice(&app, user, OGG).await;
    let shown = transcript(&app, user, "hello").await;

    let answer = app
        .press_on(user, shown.message_id, &data_of(&shown, "Edit"))
        .await;
    assert_eq!(answer, "Send the corrected text.");
    let copy = wait_message(&app, user, "with the transcript to copy", |m| {
        m.text.contains(SEND_CORRECTED)
    })
    .await;
    assert_eq!(
        copy.html,
        format!("<code>fix the failing test in parser.r s</code>\n\n{SEND_CORRECTED}")
    );
    assert!(copy.entities.iter().any(|e| e.kind == "code"), "{copy:?}");
    let settled = without_buttons(&app, user, shown.message_id).await;
    assert!(
        settled.text.contains("Correct it and send it as a message"),
        "{}",
        settled.text
    );

    // The corrected text is an ordinary prompt, the first thing published.
    app.say(user, "fix the failing test in parser.rs").await;
    assert_eq!(
        next_prompt(&app, &mut sub, &agent).await,
        "fix the failing test in parser.rs"
    );
    assert_eq!(
        app.press_on(user, shown.message_id, &data_of(&shown, "Run"))
            .await,
        EXPIRED
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_removes_the_buttons_and_runs_nothing() {
    let stt = fake_stt().await;
    let app = start(Backend::Sqlite, &stt, &[]).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    send_voice(&app, user, OGG).await;
    let shown = transcript(&app, user, "hello").await;

    let answer = app
        .press_on(user, shown.message_id, &data_of(&shown, "Cancel"))
        .await;
    assert_eq!(answer, "Cancelled.");
    let settled = without_buttons(&app, user, shown.message_id).await;
    assert!(settled.text.ends_with("✖ Cancelled."), "{}", settled.text);
    // Its Run button, pressed by a stale client, finds nothing.
    assert_eq!(
        app.press_on(user, shown.message_id, &data_of(&shown, "Run"))
            .await,
        EXPIRED
    );
    // The first command the agent receives is the next typed prompt.
    app.say(user, "typed after cancelling").await;
    assert_eq!(
        next_prompt(&app, &mut sub, &agent).await,
        "typed after cancelling"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_sender_may_press_and_an_expired_note_says_so() {
    let stt = fake_stt().await;
    let app = start(Backend::Sqlite, &stt, &[]).await;
    let owner = user_id();
    let (agent, mut sub) = app.online_agent(owner, "hello").await;
    send_voice(&app, owner, OGG).await;
    let shown = transcript(&app, owner, "hello").await;
    let run = data_of(&shown, "Run");

    // Someone else, with the same button data (a forged press).
    let stranger = user_id();
    for data in [&run, &data_of(&shown, "Edit"), &data_of(&shown, "Cancel")] {
        assert_eq!(
            app.press_on(stranger, shown.message_id, data).await,
            NOT_YOURS
        );
    }
    assert!(
        app.tg
            .message(owner, shown.message_id)
            .unwrap()
            .reply_markup
            .is_some()
    );
    // The owner still can, and the transcript is the first command.
    assert_eq!(
        app.press_on(owner, shown.message_id, &run).await,
        "Sent to hello."
    );
    assert_eq!(
        next_prompt(&app, &mut sub, &agent).await,
        remoteagent_testkit::stt::DEFAULT_TRANSCRIPT
    );

    // A transcript past its time (its key gone from Redis).
    send_voice(&app, owner, OGG).await;
    let second = wait_message(&app, owner, "with a second transcript", |m| {
        m.text.starts_with("🎙 For hello")
            && m.reply_markup.is_some()
            && m.message_id != shown.message_id
    })
    .await;
    let run = data_of(&second, "Run");
    let mut conn = remoteagent_testkit::redis_conn(&app.redis_url).await;
    let id = run.strip_prefix("voice:run:").unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("ra:voice:{id}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(app.press_on(owner, second.message_id, &run).await, EXPIRED);
    assert_eq!(EXPIRED, "This voice note expired; send it again.");
    // Made-up data.
    assert_eq!(
        app.press_on(owner, second.message_id, "voice:run:../../x")
            .await,
        EXPIRED
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_while_the_agent_is_offline_keeps_the_buttons() {
    let stt = fake_stt().await;
    let app = start(Backend::Sqlite, &stt, &[]).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    send_voice(&app, user, OGG).await;
    let shown = transcript(&app, user, "hello").await;
    let run = data_of(&shown, "Run");

    let mut conn = remoteagent_testkit::redis_conn(&app.redis_url).await;
    let _: i64 = redis::cmd("DEL")
        .arg(names::presence_key(&agent))
        .query_async(&mut conn)
        .await
        .unwrap();
    let answer = app.press_on(user, shown.message_id, &run).await;
    assert_eq!(answer, "hello is offline; press Run again once it is back.");
    // Told in the chat as a typed prompt is told.
    app.expect_message(user, "hello is offline. Is remoteagentd running")
        .await;
    assert!(
        app.tg
            .message(user, shown.message_id)
            .unwrap()
            .reply_markup
            .is_some()
    );

    app.set_presence(&agent).await;
    assert_eq!(
        app.press_on(user, shown.message_id, &run).await,
        "Sent to hello."
    );
    assert_eq!(
        next_prompt(&app, &mut sub, &agent).await,
        remoteagent_testkit::stt::DEFAULT_TRANSCRIPT
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_of_the_server_is_told_with_its_message() {
    let stt = fake_stt().await;
    let app = start(Backend::Sqlite, &stt, &[]).await;
    let user = user_id();
    app.online_agent(user, "hello").await;
    stt.fail_next(
        400,
        "Audio file is too short.\nMinimum audio length is 0.1 seconds.",
    );
    send_voice(&app, user, OGG).await;
    let told = app
        .expect_message(
            user,
            "refused it (HTTP 400): Audio file is too short. Minimum audio length is 0.1 seconds.",
        )
        .await;
    assert!(
        told.starts_with("🎙 Could not transcribe that recording"),
        "{told}"
    );
    // One message, the placeholder turned into the error, without buttons.
    let messages = app.tg.messages(user);
    let last = messages.last().unwrap();
    assert_eq!(last.text, told);
    assert!(last.reply_markup.is_none());
    assert_eq!(app.count_messages(user, "🎙"), 1, "{messages:#?}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_told_without_the_key() {
    let stt = FakeStt::start().await;
    stt.require_key("sk-the-right-one-000000");
    let app = start(Backend::Sqlite, &stt, &[]).await;
    let user = user_id();
    app.online_agent(user, "hello").await;
    send_voice(&app, user, OGG).await;
    let told = app
        .expect_message(user, "(HTTP 401): Incorrect API key provided")
        .await;
    assert!(!told.contains(KEY), "{told}");
    assert_eq!(stt.requests()[0].status, 401);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_told_as_a_timeout() {
    let stt = fake_stt().await;
    let app = start(Backend::Sqlite, &stt, &[("STT_TIMEOUT_SECS", "1")]).await;
    let user = user_id();
    app.online_agent(user, "hello").await;
    stt.hang_next();
    send_voice(&app, user, OGG).await;
    app.expect_message(
        user,
        "the transcription timed out: the speech-to-text server did not answer within 1 s",
    )
    .await;
    assert_eq!(stt.requests()[0].status, 0, "the fake never answered");
    // The user's lane was not held meanwhile, and the next note works.
    send_voice(&app, user, OGG).await;
    transcript(&app, user, "hello").await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_over_20_mb_is_refused_with_the_reason() {
    let stt = fake_stt().await;
    let app = start(Backend::Sqlite, &stt, &[]).await;
    let user = user_id();
    app.online_agent(user, "hello").await;
    // Said by its size in the update, before any download.
    let file = app.tg.add_file(vec![0; 20_000_001], "voice", "oga");
    deliver(
        &app,
        &updates::voice(app.update_id(), user, user, &file, 900),
    )
    .await;
    app.expect_message(
        user,
        "too big (20.0 MB): Telegram lets bots download at most 20 MB",
    )
    .await;
    // Without a size in the update, Telegram's getFile refusal says it.
    let mut update = updates::voice(app.update_id(), user, user, &file, 900);
    update["message"]["voice"]
        .as_object_mut()
        .unwrap()
        .remove("file_size");
    deliver(&app, &update).await;
    assert!(
        app.wait_count(user, "Telegram lets bots download at most 20 MB", 2)
            .await
    );
    let refused = app.tg.refused_calls();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(
        refused[0].description(),
        Some("Bad Request: file is too big")
    );
    assert!(stt.requests().is_empty());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stt_url_a_voice_note_gets_one_hint() {
    let app = TestApp::start(Backend::Sqlite).await;
    let user = user_id();
    app.online_agent(user, "hello").await;
    let before = app.tg.messages(user).len();
    send_voice(&app, user, OGG).await;
    app.expect_message(user, NEEDS_STT).await;
    assert_eq!(NEEDS_STT, "Voice notes need STT_URL; see README.");
    // And nothing else: no download, no other message. A text sent after
    // it is answered after it (the same lane), so its answer bounds the wait.
    app.say(user, "/status").await;
    app.expect_message(user, "Current agent:").await;
    let messages = app.tg.messages(user);
    assert_eq!(messages.len(), before + 2, "{messages:#?}");
    assert!(app.tg.calls_of("getFile").is_empty());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_without_agents_is_told_how_to_pair_and_nothing_is_transcribed() {
    let stt = fake_stt().await;
    let app = start(Backend::Sqlite, &stt, &[]).await;
    let stranger = user_id();
    send_voice(&app, stranger, OGG).await;
    app.expect_message(stranger, "no paired agents").await;
    assert!(app.tg.calls_of("getFile").is_empty());
    assert!(stt.requests().is_empty());
    app.finish().await;
}
