//! The answer of a daemon to a request the bot published with a fresh
//! stream id (`/get`, `/sessions`, a diff card's buttons): its output
//! stream `output:{agent}:{id}` read to `done` on a connection of this
//! task's own (`XREAD BLOCK` never runs on the shared one), in a task of
//! its own (the user's lane is not held while the daemon works).
//!
//! What each event means is the caller's ([`Reader`]); what is common is
//! here: the deadlines (the first answer within `GET_ANSWER_SECS` — a
//! daemon too old to know the request skips it without a word —, the whole
//! answer within the caller's limit), reconnecting on [`Backoff`], the
//! stream deleted once read (nobody else reads it), a cloud shutting down,
//! the words for a silent daemon, and a `file` event's document
//! ([`send_file`]).

use std::time::Duration;

use redis::streams::{StreamReadOptions, StreamReadReply};
use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::events::{DonePayload, OutputEvent};
use remoteagent_proto::files::FilePayload;
use remoteagent_proto::{AgentId, SessionId, names, stream};
use remoteagent_rediskit::{Conn, Options, conn as rconn};
use tokio::time::Instant;

use crate::blob_fetch;
use crate::commands;
use crate::db::agents::Agent;
use crate::state::AppState;
use crate::telegram::{ChatRef, TelegramError, escape_html};

/// Longest wait of one `XREAD BLOCK`.
const BLOCK: Duration = Duration::from_secs(2);

/// How reading an answer ended.
pub enum End {
    /// The answer was read to its `done`.
    Done(DonePayload),
    /// Nothing came from the daemon within `GET_ANSWER_SECS`.
    Silent,
    /// The daemon took the request but did not finish in time.
    Unfinished,
    /// Redis could not be read.
    Unreadable(String),
    /// The cloud is shutting down.
    Cancelled,
}

/// What the caller does with each event before `done`.
pub trait Reader {
    /// One event of the answer (never `done`). `conn` is the follower's
    /// own connection (for a `file` event's blob).
    fn event(&mut self, conn: &mut Conn, event: OutputEvent) -> impl Future<Output = ()> + Send;
}

/// Reads the answer on `output:{agent}:{id}` until its `done` (deleting
/// the stream then) or a deadline: the first entry within
/// `GET_ANSWER_SECS`, all of it within `whole` of the first.
pub async fn follow<R: Reader>(
    state: &AppState,
    agent: &AgentId,
    id: &SessionId,
    whole: Duration,
    reader: &mut R,
) -> End {
    let shutdown = state.shutdown.clone();
    tokio::select! {
        end = read(state, agent, id, whole, reader) => end,
        () = shutdown.cancelled() => End::Cancelled,
    }
}

async fn read<R: Reader>(
    state: &AppState,
    agent: &AgentId,
    id: &SessionId,
    whole: Duration,
    reader: &mut R,
) -> End {
    let stream_key = names::output_stream(agent, id);
    let mut done_by = Instant::now() + Duration::from_secs(state.config.get_answer_secs);
    let mut answered = false;
    let mut last_id = "0-0".to_string();
    let mut conn: Option<Conn> = None;
    let mut failures = Backoff::new(Duration::from_millis(500), Duration::from_secs(4))
        .attempts(6)
        .without_jitter();
    let opts = StreamReadOptions::default()
        .block(BLOCK.as_millis() as usize)
        .count(16);
    loop {
        if Instant::now() >= done_by {
            return if answered {
                End::Unfinished
            } else {
                End::Silent
            };
        }
        if conn.is_none() {
            conn = match connect(state).await {
                Ok(c) => Some(c),
                Err(e) => match failures.next_delay() {
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    None => return End::Unreadable(e.to_string()),
                },
            };
        }
        let Some(c) = conn.as_mut() else { continue };
        let reply: redis::RedisResult<Option<StreamReadReply>> =
            redis::AsyncCommands::xread_options(c, &[&stream_key], &[&last_id], &opts).await;
        let entries = match reply {
            Ok(Some(r)) => r.keys.into_iter().flat_map(|k| k.ids).collect::<Vec<_>>(),
            Ok(None) => continue,
            Err(e) => {
                conn = None;
                match failures.next_delay() {
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    None => return End::Unreadable(e.to_string()),
                }
            }
        };
        failures.reset();
        if !answered {
            // The daemon took the request: from now on the deadline is the
            // whole answer's, not the first entry's.
            answered = true;
            done_by = Instant::now() + whole;
        }
        for entry in entries {
            last_id = entry.id.clone();
            let value = entry
                .map
                .get(stream::FIELD)
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
            let event = match stream::parse(value.as_deref()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(agent = %agent, answer = %id, error = %e, "skipping a malformed answer entry");
                    continue;
                }
            };
            let Some(c) = conn.as_mut() else { break };
            match event {
                OutputEvent::Done(done) => {
                    // Nobody else reads this stream.
                    let _ = redis::cmd("DEL")
                        .arg(&stream_key)
                        .query_async::<i64>(c)
                        .await;
                    return End::Done(done);
                }
                other => reader.event(c, other).await,
            }
        }
    }
}

/// A connection of the follower's own: its `XREAD BLOCK` must hold up no
/// one else (ARCHITECTURE.md: no blocking command on a shared one).
async fn connect(state: &AppState) -> redis::RedisResult<Conn> {
    let options = Options {
        connection_timeout: Some(Duration::from_secs(5)),
        response_timeout: Some(BLOCK + Duration::from_secs(10)),
        ..Options::default()
    };
    rconn::dedicated(&state.config.redis_target(), &options).await
}

/// What to say when the daemon did not answer `asked` (HTML: `/get
/// <code>a.rs</code>`) in time: offline, or too old to know `what` (`/get`,
/// `Diff`…). `None` when the agent is offline (the bot says that its
/// way, `bot::prompt::offline_text`).
pub async fn silent_words(
    state: &AppState,
    agent: &Agent,
    asked: &str,
    what: &str,
) -> Option<String> {
    let online = commands::is_online(&state.redis, &agent.id)
        .await
        .unwrap_or(true);
    online.then(|| {
        format!(
            "⚠️ <b>{}</b> did not answer {asked}; is its daemon up to date? \
             {what} needs a recent remoteagentd on {}.",
            escape_html(&agent.name),
            escape_html(&agent.hostname)
        )
    })
}

/// Sends a message and logs a failure (the outbox has retried it).
pub async fn say(state: &AppState, to: ChatRef, html: String) {
    if let Err(e) = state.outbox.send_to(to, html, None).await {
        tracing::warn!(chat = to.chat, error = %e, "answering a request");
    }
}

/// A `file` event of an answer: fetched from its blob and checked
/// (`crate::blob_fetch`), sent as a document with `caption`, its blob
/// deleted. A file that cannot be fetched or sent is said in words.
pub async fn send_file(
    state: &AppState,
    to: ChatRef,
    conn: &mut Conn,
    agent: &AgentId,
    f: &FilePayload,
    caption: String,
) {
    let name = escape_html(&remoteagent_proto::files::safe_file_name(&f.file.name));
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8))
        .attempts(5)
        .without_jitter();
    let fetched = loop {
        match blob_fetch::fetch(conn, agent, &f.file).await {
            Err(e) if e.is_transient() => match backoff.next_delay() {
                Some(d) => tokio::time::sleep(d).await,
                None => break Err(e),
            },
            other => break other,
        }
    };
    let fetched = match fetched {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(agent = %agent, error = %e, "a file of an answer could not be fetched");
            if !e.is_transient() && names::is_blob_key_of(agent, &f.file.key) {
                blob_fetch::delete(conn, &f.file.key).await;
            }
            say(
                state,
                to,
                format!(
                    "⚠️ {name} could not be sent: {}",
                    escape_html(&e.to_string())
                ),
            )
            .await;
            return;
        }
    };
    let document = fetched.document(&f.file, Some(caption));
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(16))
        .attempts(5)
        .without_jitter();
    // Retried while Telegram cannot be reached (the outbox itself waits
    // out a 429): a second copy is better than none.
    let sent = loop {
        match state.outbox.send_document_to(to, document.clone()).await {
            Err(TelegramError::Transport(e)) => match backoff.next_delay() {
                Some(d) => {
                    tracing::warn!(agent = %agent, error = %e, "sending a file of an answer; retrying");
                    tokio::time::sleep(d).await;
                }
                None => break Err(TelegramError::Transport(e)),
            },
            other => break other,
        }
    };
    match sent {
        Ok(_) => {
            tracing::info!(agent = %agent, bytes = fetched.size, "a file of an answer was sent")
        }
        Err(e) => {
            tracing::error!(agent = %agent, error = %e, "Telegram did not accept a file of an answer");
            let why = match &e {
                TelegramError::Api { description, .. } => description.clone(),
                other => other.to_string(),
            };
            say(
                state,
                to,
                format!("⚠️ Telegram did not accept {name}: {}", escape_html(&why)),
            )
            .await;
        }
    }
    blob_fetch::delete(conn, &f.file.key).await;
}
