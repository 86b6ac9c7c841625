//! Shared helpers of the forwarder tests: output streams written the way the
//! daemon writes them, forwarders wired to the fake Telegram, and reading
//! back what the user sees.

#![allow(dead_code)]

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use remoteagent_cloud::forwarder::{Forwarder, ForwarderOptions, SessionFinished, SessionStart};
use remoteagent_cloud::telegram::{Outbox, OutboxConfig, Telegram};
use remoteagent_proto::events::{
    ApprovalRequestPayload, ApprovalResolvedPayload, ChunkPayload, DonePayload, DoneStatus,
    NoticePayload, OutputEvent, StreamKind,
};
use remoteagent_proto::{AgentId, SessionId, names};
use remoteagent_testkit::telegram::{FakeMessage, FakeTelegram};
use tokio::sync::mpsc;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One session's ids and where it goes.
#[derive(Clone, Debug)]
pub struct Ids {
    pub agent: AgentId,
    pub session: SessionId,
    pub chat: i64,
}

impl Ids {
    pub fn new() -> Self {
        Ids {
            agent: AgentId::generate(),
            session: SessionId::generate(),
            chat: 1_000_000 + i64::from(rand::random::<u32>() % 1_000_000_000),
        }
    }

    pub fn stream(&self) -> String {
        names::output_stream(&self.agent, &self.session)
    }

    pub fn start(&self, name: &str) -> SessionStart {
        SessionStart {
            agent_id: self.agent.clone(),
            session_id: self.session.clone(),
            chat_id: self.chat,
            agent_name: name.to_string(),
            approval_chat_id: None,
            thread: None,
        }
    }
}

/// Starts forwarding a session the way the bot does ([`Forwarder::begin`])
/// and waits for its placeholder; returns the placeholder's message id.
pub async fn start(fwd: &Forwarder, tg: &FakeTelegram, session: SessionStart) -> i64 {
    let chat = session.chat_id;
    let before = tg
        .messages(chat)
        .iter()
        .map(|m| m.message_id)
        .max()
        .unwrap_or(0);
    fwd.begin(session).await.unwrap();
    let mut id = 0;
    let seen = tg
        .wait_for(
            |calls| {
                calls.iter().any(|c| {
                    c.method == "sendMessage"
                        && c.chat_id() == Some(chat)
                        && c.text().is_some_and(|t| t.contains("is working"))
                        && c.ok()
                })
            },
            TIMEOUT,
        )
        .await;
    assert!(seen, "no placeholder");
    for c in tg.calls_of("sendMessage") {
        if c.chat_id() == Some(chat) && c.text().is_some_and(|t| t.contains("is working")) {
            let mid = c.response["result"]["message_id"].as_i64().unwrap_or(0);
            if mid > before {
                id = mid;
                break;
            }
        }
    }
    assert!(id > 0, "no placeholder id");
    id
}

pub async fn connect(url: &str) -> MultiplexedConnection {
    remoteagent_testkit::redis_conn(url).await
}

/// Appends one event the way the daemon does (`XADD … MAXLEN ~ … * event <json>`);
/// the stream expires after a while so tests leave nothing behind.
pub async fn xadd<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    ids: &Ids,
    event: &OutputEvent,
) -> String {
    let json = serde_json::to_string(event).unwrap();
    xadd_field(conn, ids, names::STREAM_FIELD, &json).await
}

pub async fn xadd_field<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    ids: &Ids,
    field: &str,
    value: &str,
) -> String {
    let id: String = redis::cmd("XADD")
        .arg(ids.stream())
        .arg("MAXLEN")
        .arg("~")
        .arg(names::OUTPUT_STREAM_MAXLEN)
        .arg("*")
        .arg(field)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap();
    let _: bool = redis::cmd("EXPIRE")
        .arg(ids.stream())
        .arg(600)
        .query_async(conn)
        .await
        .unwrap();
    id
}

/// Writes `text` as chunks of `size` characters each (never splitting a
/// character, as the daemon guarantees); returns the number of chunks.
pub async fn write_chunks<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    ids: &Ids,
    text: &str,
    size: usize,
    first_seq: u64,
) -> u64 {
    let chars: Vec<char> = text.chars().collect();
    let mut seq = first_seq;
    for piece in chars.chunks(size) {
        let event = OutputEvent::Chunk(ChunkPayload {
            seq,
            stream: StreamKind::Stdout,
            text: piece.iter().collect(),
        });
        xadd(conn, ids, &event).await;
        seq += 1;
    }
    seq - first_seq
}

pub fn done(
    status: DoneStatus,
    exit_code: Option<i32>,
    duration_ms: u64,
    message: Option<&str>,
) -> OutputEvent {
    OutputEvent::Done(DonePayload {
        status,
        exit_code,
        duration_ms,
        message: message.map(str::to_string),
        chunks: 0,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    })
}

pub fn notice(text: &str) -> OutputEvent {
    OutputEvent::Notice(NoticePayload { text: text.into() })
}

pub fn approval_request(request_id: &str, tool: &str, summary: &str) -> OutputEvent {
    OutputEvent::ApprovalRequest(ApprovalRequestPayload {
        request_id: request_id.into(),
        tool: tool.into(),
        summary: summary.into(),
        timeout_secs: 300,
        kind: None,
        ..Default::default()
    })
}

pub fn approval_resolved(request_id: &str, allow: bool, reason: &str) -> OutputEvent {
    OutputEvent::ApprovalResolved(ApprovalResolvedPayload {
        request_id: request_id.into(),
        allow,
        reason: reason.into(),
    })
}

/// A chunk with an explicit `seq` (to write gaps).
pub fn chunk(seq: u64, text: &str) -> OutputEvent {
    OutputEvent::Chunk(ChunkPayload {
        seq,
        stream: StreamKind::Stdout,
        text: text.into(),
    })
}

pub fn options(page_chars: usize) -> ForwarderOptions {
    ForwarderOptions {
        lock_ttl: Duration::from_secs(3),
        resume_interval: Duration::from_millis(200),
        block: Duration::from_millis(500),
        page_chars,
        // Tests that do not test the page budget never reach it.
        max_pages: 1_000,
        ..ForwarderOptions::default()
    }
}

/// A forwarder on `redis_url` sending to the fake, with the given pacing.
pub fn forwarder(
    tg: &FakeTelegram,
    redis_url: &str,
    replica: &str,
    per_chat: Duration,
    options: ForwarderOptions,
) -> (Forwarder, mpsc::UnboundedReceiver<SessionFinished>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let outbox = Outbox::new(
        Telegram::api(&tg.api_base(), &tg.token()),
        OutboxConfig {
            per_chat_interval: per_chat,
            ..OutboxConfig::default()
        },
    );
    let f = Forwarder::with_options(
        remoteagent_rediskit::Target::parse(redis_url, false).unwrap(),
        outbox,
        tx,
        replica.to_string(),
        options,
    );
    (f, rx)
}

pub async fn finished(rx: &mut mpsc::UnboundedReceiver<SessionFinished>) -> SessionFinished {
    tokio::time::timeout(TIMEOUT, rx.recv())
        .await
        .expect("the session did not finish in time")
        .expect("the forwarder dropped its channel")
}

/// What can be compared across pages: Telegram trims each message, so the
/// whitespace at a page's edges is not shown. The characters other than
/// whitespace, in order (the pager's property tests check the rest).
pub fn visible(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Asserts that the pages' `body` shows `text`, character for character.
#[track_caller]
pub fn assert_shows(body: &str, text: &str) {
    assert_eq!(visible(body), visible(text), "body: {body:?}");
}

/// Whether `m` is the ping of agent `agent`: the new message that tells a
/// run's end.
pub fn is_ping(m: &FakeMessage, agent: &str) -> bool {
    ["finished in", "failed", "stopped"]
        .iter()
        .zip(["✅", "❌", "⏹"])
        .any(|(what, mark)| m.text.starts_with(&format!("{mark} {agent} {what}")))
}

/// A chat's messages split into the session's output and the ping that
/// ends it: a new message naming `agent`, without buttons, replying to the
/// message just before it (the one with the status: the last page, or the
/// output file). Fails unless exactly one such ping ends the chat.
#[track_caller]
pub fn output_and_ping(
    tg: &FakeTelegram,
    chat: i64,
    agent: &str,
) -> (Vec<FakeMessage>, FakeMessage) {
    let mut messages = tg.messages(chat);
    let pings = messages.iter().filter(|m| is_ping(m, agent)).count();
    assert_eq!(pings, 1, "one ping expected: {messages:#?}");
    let ping = messages.pop().expect("no messages");
    assert!(is_ping(&ping, agent), "the ping is not last: {messages:#?}");
    let page = messages.last().map_or(0, |m| m.message_id);
    let file = tg.documents_in(chat).last().map_or(0, |d| d.message_id);
    let status = page.max(file);
    assert!(status > 0, "no output before the ping");
    assert_eq!(ping.reply_to, Some(status), "{ping:#?}");
    assert_eq!(ping.reply_markup, None);
    (messages, ping)
}

/// [`output_and_ping`]'s output alone.
#[track_caller]
pub fn output_of(tg: &FakeTelegram, chat: i64, agent: &str) -> Vec<FakeMessage> {
    output_and_ping(tg, chat, agent).0
}

/// Splits what the chat shows into the output and the status line: the
/// status ends the last message, after a newline, or is that message alone.
pub fn body_and_status(messages: &[FakeMessage]) -> (String, String) {
    let (last, before) = messages.split_last().expect("no messages");
    let mut body: String = before.iter().map(|m| m.text.as_str()).collect();
    match last.text.rsplit_once('\n') {
        Some((rest, status)) => {
            body.push_str(rest);
            (body, status.to_string())
        }
        None => (body, last.text.clone()),
    }
}

/// Output with everything that needs care: HTML specials, multi-byte
/// characters, and (with `long_line`) a line longer than a message.
pub fn tricky_text(lines: usize, long_line: bool) -> String {
    let mut text = String::new();
    for i in 0..lines {
        text.push_str(&format!(
            "{i:04} if a<b && c>d {{ é中ü }} &amp; <b>not bold</b> 🚀\n"
        ));
        if long_line && i == lines / 2 {
            text.push_str(&"x<&>é".repeat(1100));
            text.push('\n');
        }
    }
    text
}
