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

use remoteagent_proto::SessionId;
use remoteagent_proto::events::{CommandEvent, DoneStatus, OutputEvent};
use remoteagent_proto::files::GetFilePayload;
use remoteagent_rediskit::Conn;

use super::Ctx;
use crate::answer_stream;
use crate::commands;
use crate::db::agents::Agent;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::telegram::{ChatRef, escape_html};

/// `GET_ANSWER_SECS` unless configured.
pub const DEFAULT_ANSWER_SECS: u64 = 20;
/// Longest wait for the whole answer once the daemon took the command: a
/// blob lives 15 minutes, so waiting longer could not deliver anything.
const WHOLE_ANSWER: Duration = Duration::from_secs(10 * 60);
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
        said_something: false,
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
    /// Something (a notice, the file) was said before `done`.
    said_something: bool,
}

impl Waiter {
    async fn run(mut self) {
        let state = self.state.clone();
        let (agent, session) = (self.agent.id.clone(), self.session.clone());
        let end = answer_stream::follow(&state, &agent, &session, WHOLE_ANSWER, &mut self).await;
        let name = escape_html(&self.agent.name);
        let path = self.shown_path();
        let words = match end {
            answer_stream::End::Done(done) => {
                tracing::info!(agent = %self.agent.id, session = %self.session, status = done.status.as_str(), "/get answered");
                if done.status == DoneStatus::Ok || self.said_something {
                    return;
                }
                let why = done.message.unwrap_or_else(|| done.status.as_str().into());
                format!("⚠️ {}", escape_html(&why))
            }
            answer_stream::End::Cancelled => format!(
                "⚠️ The cloud is restarting: /get <code>{path}</code> was cut short. Send it again in a moment."
            ),
            answer_stream::End::Silent => {
                let asked = format!("/get <code>{path}</code>");
                answer_stream::silent_words(&self.state, &self.agent, &asked, "/get")
                    .await
                    .unwrap_or_else(|| super::prompt::offline_text(&self.agent))
            }
            answer_stream::End::Unfinished => {
                format!("⚠️ <b>{name}</b> did not finish sending <code>{path}</code> in time.")
            }
            answer_stream::End::Unreadable(e) => {
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
        answer_stream::say(&self.state, ChatRef::flat(self.chat), html).await;
    }
}

impl answer_stream::Reader for Waiter {
    async fn event(&mut self, conn: &mut Conn, event: OutputEvent) {
        match event {
            OutputEvent::Notice(n) => {
                self.said_something = true;
                self.say(format!("<i>{}</i>", escape_html(&n.text))).await;
            }
            OutputEvent::File(f) => {
                self.said_something = true;
                let caption = format!(
                    "📎 <code>{}</code> from <b>{}</b>",
                    self.shown_path(),
                    escape_html(&self.agent.name)
                );
                answer_stream::send_file(
                    &self.state,
                    ChatRef::flat(self.chat),
                    conn,
                    &self.agent.id,
                    &f,
                    caption,
                )
                .await;
            }
            _ => {}
        }
    }
}
