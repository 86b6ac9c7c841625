//! Follows one `/sessions` answer on its output stream to `done`, on a
//! connection of its own (`XREAD BLOCK` never runs on the shared one), and
//! shows the list with its buttons. Silence past `GET_ANSWER_SECS` (a
//! daemon too old to know `list_sessions` skips it without a word), a
//! stream that cannot be read and a cloud shutting down are said in words.

use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_proto::sessions::SessionsPayload;
use remoteagent_proto::{SessionId, names, stream};
use secrecy::ExposeSecret;
use tokio::time::Instant;

use crate::commands;
use crate::db::agents::Agent;
use crate::state::AppState;
use crate::telegram::escape_html;

/// Longest wait for the whole answer once the daemon took the command.
const WHOLE_ANSWER: Duration = Duration::from_secs(60);
/// Longest wait of one `XREAD BLOCK`.
const BLOCK: Duration = Duration::from_secs(2);

pub(super) struct Waiter {
    pub state: AppState,
    pub chat: i64,
    pub user: i64,
    pub agent: Agent,
    /// The request id: the answer comes on `output:{agent}:{request}`.
    pub request: SessionId,
    /// The command answered (`/sessions`, `/clean`), named in the texts
    /// when the answer does not come.
    pub what: &'static str,
}

enum End {
    Done,
    Silent,
    Unfinished,
    Unreadable(String),
}

impl Waiter {
    pub async fn run(self) {
        let shutdown = self.state.shutdown.clone();
        let name = escape_html(&self.agent.name);
        let what = self.what;
        let end = tokio::select! {
            end = self.follow() => end,
            () = shutdown.cancelled() => {
                self.say(format!("⚠️ The cloud is restarting: {} of <b>{name}</b> was cut short. Send it again in a moment.", self.what)).await;
                return;
            }
        };
        let words = match end {
            End::Done => return,
            End::Silent => {
                let online = commands::is_online(&self.state.redis, &self.agent.id)
                    .await
                    .unwrap_or(true);
                if online {
                    format!(
                        "⚠️ <b>{name}</b> did not answer {what}; is its daemon up to date? \
                         {what} needs a recent remoteagentd on {}.",
                        escape_html(&self.agent.hostname)
                    )
                } else {
                    super::super::prompt::offline_text(&self.agent)
                }
            }
            End::Unfinished => {
                format!(
                    "⚠️ <b>{name}</b> did not finish its answer to {} in time.",
                    self.what
                )
            }
            End::Unreadable(e) => {
                tracing::error!(agent = %self.agent.id, request = %self.request, error = %e, "reading a /sessions answer");
                format!(
                    "⚠️ The answer of <b>{name}</b> to {} could not be read. Please try again.",
                    self.what
                )
            }
        };
        self.say(words).await;
    }

    async fn say(&self, html: String) {
        self.show(html, None).await;
    }

    async fn show(&self, html: String, keyboard: Option<crate::telegram::InlineKeyboard>) {
        if let Err(e) = self.state.outbox.send(self.chat, html, keyboard).await {
            tracing::warn!(chat = self.chat, error = %e, "answering a /sessions");
        }
    }

    /// The list, kept for its buttons, with them.
    async fn show_list(&self, answer: SessionsPayload) {
        let now = remoteagent_proto::now_ms();
        let text = super::list_text(&self.agent.name, &answer.sessions, now);
        if answer.sessions.is_empty() {
            return self.say(text).await;
        }
        match super::resume::keep_list(&self.state, self.user, &self.agent.id, &answer.sessions)
            .await
        {
            Ok(list) => {
                let keyboard = super::keyboard(&list, answer.sessions.len());
                self.show(text, Some(keyboard)).await;
            }
            Err(e) => {
                tracing::error!(agent = %self.agent.id, error = %e, "keeping a list of sessions");
                self.say(format!(
                    "{text}\n\n⚠️ The ▶ Resume buttons could not be kept on our side; send /sessions again in a moment."
                ))
                .await;
            }
        }
    }

    /// Reads the answer's stream until `done` or a deadline.
    async fn follow(&self) -> End {
        let stream_key = names::output_stream(&self.agent.id, &self.request);
        let mut done_by = Instant::now() + Duration::from_secs(self.state.config.get_answer_secs);
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
                        tracing::warn!(request = %self.request, error = %e, "skipping a malformed /sessions answer entry");
                        continue;
                    }
                };
                match event {
                    OutputEvent::Sessions(answer) => {
                        said_something = true;
                        self.show_list(answer).await;
                    }
                    OutputEvent::Notice(n) => {
                        said_something = true;
                        self.say(format!(
                            "<b>{}</b>: <i>{}</i>",
                            escape_html(&self.agent.name),
                            escape_html(&n.text)
                        ))
                        .await;
                    }
                    OutputEvent::Done(done) => {
                        if !said_something {
                            let why = if done.status == DoneStatus::Ok {
                                "the answer held no list".to_string()
                            } else {
                                done.message.unwrap_or_else(|| done.status.as_str().into())
                            };
                            self.say(format!(
                                "⚠️ <b>{}</b>: {}",
                                escape_html(&self.agent.name),
                                escape_html(&why)
                            ))
                            .await;
                        }
                        if let Some(c) = conn.as_mut() {
                            // Nobody else reads this stream.
                            let _ = redis::cmd("DEL")
                                .arg(&stream_key)
                                .query_async::<i64>(c)
                                .await;
                        }
                        return End::Done;
                    }
                    _ => {}
                }
            }
        }
    }

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
