//! `/get PATH`: a file of the current agent's project (a folder comes
//! zipped) as a document in the chat.
//!
//! The bot publishes a signed `get_file` command with a fresh session id
//! and returns (the user's lane is not held while the daemon works); a task
//! of its own reads that session's output stream (`output:{agent}:{sid}`)
//! on a connection it owns (`XREAD BLOCK`: never on the shared one) until
//! `done`. A `file` event is fetched from its blob, checked
//! (`crate::blob_fetch`), sent through the outbox (pacing, 429 retries) and
//! its blob deleted; a `notice` is shown as it is. A daemon that does not
//! answer within `GET_ANSWER_SECS` (one too old to know `/get` skips the
//! command without a word) is said to have not answered; a cloud shutting
//! down says the `/get` was cut short.

use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::events::{CommandEvent, DoneStatus, OutputEvent};
use remoteagent_proto::files::{FilePayload, GetFilePayload};
use remoteagent_proto::{SessionId, names, stream};
use secrecy::ExposeSecret;
use tokio::time::Instant;

use super::Ctx;
use crate::blob_fetch;
use crate::commands;
use crate::db::agents::Agent;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::telegram::escape_html;

/// `GET_ANSWER_SECS` unless configured.
pub const DEFAULT_ANSWER_SECS: u64 = 20;
/// Longest wait for the whole answer once the daemon took the command: a
/// blob lives 15 minutes, so waiting longer could not deliver anything.
const WHOLE_ANSWER: Duration = Duration::from_secs(10 * 60);
/// Longest wait of one `XREAD BLOCK`.
const BLOCK: Duration = Duration::from_secs(2);
/// Longest path accepted (it travels in a signed envelope).
const MAX_PATH_BYTES: usize = 1024;

const USAGE: &str = "Send <code>/get PATH</code> with a path inside the project, \
like <code>/get src/main.rs</code>; a folder comes as a zip.";

/// `/get PATH` in a private chat.
pub async fn run(ctx: &Ctx<'_>, args: &str) -> Result<()> {
    let path = args.trim();
    if path.is_empty() {
        ctx.reply(USAGE).await;
        return Ok(());
    }
    if path.len() > MAX_PATH_BYTES {
        ctx.reply(format!(
            "That path is too long (over {MAX_PATH_BYTES} bytes)."
        ))
        .await;
        return Ok(());
    }
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    let state = ctx.state;
    if !commands::is_online(&state.redis, &agent.id).await? {
        Metrics::inc(&state.metrics.offline_answers);
        ctx.reply(super::prompt::offline_text(&agent)).await;
        return Ok(());
    }
    let session_id = SessionId::generate();
    let command = CommandEvent::GetFile(GetFilePayload {
        session_id: session_id.clone(),
        path: path.to_string(),
    });
    let receivers = commands::publish(&state.redis, &state.key, &agent.id, command)
        .await
        .map_err(Error::internal)?;
    if receivers == 0 {
        Metrics::inc(&state.metrics.offline_answers);
        ctx.reply(super::prompt::offline_text(&agent)).await;
        return Ok(());
    }
    tracing::info!(agent = %agent.id, session = %session_id, chat = ctx.chat, "/get published");
    let waiter = Waiter {
        state: state.clone(),
        chat: ctx.chat,
        agent,
        session: session_id,
        path: path.to_string(),
    };
    tokio::spawn(waiter.run());
    Ok(())
}

/// Follows one `/get`'s answer to its end.
struct Waiter {
    state: AppState,
    chat: i64,
    agent: Agent,
    session: SessionId,
    path: String,
}

/// How reading the answer ended.
enum End {
    /// The answer was read to its `done`; everything was said.
    Done,
    /// Nothing came from the daemon in time.
    Silent,
    /// The daemon took the command but did not finish in time.
    Unfinished,
    /// Redis could not be read.
    Unreadable(String),
}

impl Waiter {
    async fn run(self) {
        let shutdown = self.state.shutdown.clone();
        let end = tokio::select! {
            end = self.follow() => end,
            () = shutdown.cancelled() => {
                self.say(format!(
                    "⚠️ The cloud is restarting: /get <code>{}</code> was cut short. Send it again in a moment.",
                    self.shown_path()
                ))
                .await;
                return;
            }
        };
        let name = escape_html(&self.agent.name);
        let path = self.shown_path();
        let words = match end {
            End::Done => return,
            End::Silent => {
                let online = commands::is_online(&self.state.redis, &self.agent.id)
                    .await
                    .unwrap_or(true);
                if online {
                    format!(
                        "⚠️ <b>{name}</b> did not answer /get <code>{path}</code>; is its daemon up to date? \
                         /get needs a recent remoteagentd on {}.",
                        escape_html(&self.agent.hostname)
                    )
                } else {
                    super::prompt::offline_text(&self.agent)
                }
            }
            End::Unfinished => {
                format!("⚠️ <b>{name}</b> did not finish sending <code>{path}</code> in time.")
            }
            End::Unreadable(e) => {
                tracing::error!(agent = %self.agent.id, session = %self.session, error = %e, "reading a /get answer");
                format!(
                    "⚠️ The answer of <b>{name}</b> to /get <code>{path}</code> could not be read. Please try again."
                )
            }
        };
        self.say(words).await;
    }

    fn shown_path(&self) -> String {
        let path: String = self.path.chars().take(200).collect();
        escape_html(&path)
    }

    async fn say(&self, html: String) {
        if let Err(e) = self.state.outbox.send(self.chat, html, None).await {
            tracing::warn!(chat = self.chat, error = %e, "answering a /get");
        }
    }

    /// Reads the session's stream until `done` or a deadline.
    async fn follow(&self) -> End {
        let stream_key = names::output_stream(&self.agent.id, &self.session);
        let first_by = Instant::now() + Duration::from_secs(self.state.config.get_answer_secs);
        let mut done_by = first_by;
        let mut answered = false;
        let mut said_something = false;
        let mut last_id = "0-0".to_string();
        let mut conn: Option<MultiplexedConnection> = None;
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
                conn = match self.connect().await {
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
                // The daemon took the command: from now on the deadline is
                // the blob's lifetime, not the first answer's.
                answered = true;
                done_by = Instant::now() + WHOLE_ANSWER;
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
                        tracing::warn!(session = %self.session, error = %e, "skipping a malformed /get answer entry");
                        continue;
                    }
                };
                match event {
                    OutputEvent::Notice(n) => {
                        said_something = true;
                        self.say(format!("<i>{}</i>", escape_html(&n.text))).await;
                    }
                    OutputEvent::File(f) => {
                        said_something = true;
                        if let Some(c) = conn.as_mut() {
                            self.send_file(c, &f).await;
                        }
                    }
                    OutputEvent::Done(done) => {
                        if done.status != DoneStatus::Ok && !said_something {
                            let why = done.message.unwrap_or_else(|| done.status.as_str().into());
                            self.say(format!("⚠️ {}", escape_html(&why))).await;
                        }
                        if let Some(c) = conn.as_mut() {
                            // Nobody else reads this stream.
                            let _ = redis::cmd("DEL")
                                .arg(&stream_key)
                                .query_async::<i64>(c)
                                .await;
                        }
                        tracing::info!(agent = %self.agent.id, session = %self.session, status = done.status.as_str(), "/get answered");
                        return End::Done;
                    }
                    _ => {}
                }
            }
        }
    }

    /// A `file` event: fetched, checked, sent, its blob deleted.
    async fn send_file(&self, conn: &mut MultiplexedConnection, f: &FilePayload) {
        let name = escape_html(&remoteagent_proto::files::safe_file_name(&f.file.name));
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8))
            .attempts(5)
            .without_jitter();
        let fetched = loop {
            match blob_fetch::fetch(conn, &self.agent.id, &f.file).await {
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
                tracing::warn!(agent = %self.agent.id, session = %self.session, error = %e, "a /get file could not be fetched");
                if !e.is_transient() && names::is_blob_key_of(&self.agent.id, &f.file.key) {
                    blob_fetch::delete(conn, &f.file.key).await;
                }
                self.say(format!(
                    "⚠️ {name} could not be sent: {}",
                    escape_html(&e.to_string())
                ))
                .await;
                return;
            }
        };
        let caption = format!(
            "📎 <code>{}</code> from <b>{}</b>",
            self.shown_path(),
            escape_html(&self.agent.name)
        );
        let document = fetched.document(&f.file, Some(caption));
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(16))
            .attempts(5)
            .without_jitter();
        // Retried while Telegram cannot be reached (the outbox itself waits
        // out a 429): a second copy is better than none.
        let sent = loop {
            match self
                .state
                .outbox
                .send_document(self.chat, document.clone())
                .await
            {
                Err(crate::telegram::TelegramError::Transport(e)) => match backoff.next_delay() {
                    Some(d) => {
                        tracing::warn!(session = %self.session, error = %e, "sending a /get file; retrying");
                        tokio::time::sleep(d).await;
                    }
                    None => break Err(crate::telegram::TelegramError::Transport(e)),
                },
                other => break other,
            }
        };
        match sent {
            Ok(_) => {
                tracing::info!(agent = %self.agent.id, session = %self.session, bytes = fetched.size, "/get file sent")
            }
            Err(e) => {
                tracing::error!(agent = %self.agent.id, session = %self.session, error = %e, "Telegram did not accept a /get file");
                let why = match &e {
                    crate::telegram::TelegramError::Api { description, .. } => description.clone(),
                    other => other.to_string(),
                };
                self.say(format!(
                    "⚠️ Telegram did not accept {name}: {}",
                    escape_html(&why)
                ))
                .await;
            }
        }
        blob_fetch::delete(conn, &f.file.key).await;
    }

    /// A connection of this task's own: its `XREAD BLOCK` must hold up no
    /// one else (ARCHITECTURE.md: no blocking command on a shared one).
    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        let client = redis::Client::open(self.state.config.redis_url.expose_secret())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(10)));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}
