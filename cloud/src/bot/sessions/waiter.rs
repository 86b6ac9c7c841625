//! Follows one `/sessions` (or `/rules`, `/clean`) answer on its output stream to `done`
//! (`crate::answer_stream`: own connection, own task, silence past
//! `GET_ANSWER_SECS`, an unreadable stream and a cloud shutting down said
//! in words), and shows the list with its buttons.

use std::time::Duration;

use remoteagent_proto::SessionId;
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_proto::sessions::SessionsPayload;
use remoteagent_rediskit::Conn;

use crate::answer_stream::{self, End};
use crate::db::agents::Agent;
use crate::state::AppState;
use crate::telegram::{ChatRef, escape_html};

/// Longest wait for the whole answer once the daemon took the command.
const WHOLE_ANSWER: Duration = Duration::from_secs(60);

pub(super) struct Waiter {
    pub state: AppState,
    pub chat: i64,
    pub user: i64,
    pub agent: Agent,
    /// The request id: the answer comes on `output:{agent}:{request}`.
    pub request: SessionId,
    /// Which command's answer this is.
    pub wanted: Wanted,
    /// The list or a notice was shown before `done`.
    pub said_something: bool,
}

/// How `/rules` shows its answer (`bot::rules`), handed in so this reader
/// does not depend on the module that depends on it.
pub(in crate::bot) type RulesView = fn(
    &Agent,
    &remoteagent_proto::rules::RulesPayload,
) -> (String, Option<crate::telegram::InlineKeyboard>);

/// The answer a waiter shows.
#[derive(Clone, Copy)]
pub(in crate::bot) enum Wanted {
    Sessions,
    Rules(RulesView),
    /// `/clean`: its answer is notices (`bot::sessions::clean`).
    Clean,
}

impl Wanted {
    fn command(self) -> &'static str {
        match self {
            Wanted::Sessions => "/sessions",
            Wanted::Rules(_) => "/rules",
            Wanted::Clean => "/clean",
        }
    }
}

impl Waiter {
    pub async fn run(mut self) {
        let state = self.state.clone();
        let (agent, request) = (self.agent.id.clone(), self.request.clone());
        let end = answer_stream::follow(&state, &agent, &request, WHOLE_ANSWER, &mut self).await;
        let name = escape_html(&self.agent.name);
        let command = self.wanted.command();
        let words = match end {
            End::Done(done) => {
                if self.said_something {
                    return;
                }
                let why = if done.status == DoneStatus::Ok {
                    "the answer held no list".to_string()
                } else {
                    done.message.unwrap_or_else(|| done.status.as_str().into())
                };
                format!("⚠️ <b>{name}</b>: {}", escape_html(&why))
            }
            End::Cancelled => format!(
                "⚠️ The cloud is restarting: {command} of <b>{name}</b> was cut short. Send it again in a moment."
            ),
            End::Silent => answer_stream::silent_words(&self.state, &self.agent, command, command)
                .await
                .unwrap_or_else(|| super::super::prompt::offline_text(&self.agent)),
            End::Unfinished => {
                format!("⚠️ <b>{name}</b> did not finish its answer to {command} in time.")
            }
            End::Unreadable(e) => {
                tracing::error!(agent = %self.agent.id, request = %self.request, error = %e, "reading a /sessions or /rules answer");
                format!(
                    "⚠️ The answer to {command} of <b>{name}</b> could not be read. Please try again."
                )
            }
        };
        self.say(words).await;
    }

    async fn say(&self, html: String) {
        self.show(html, None).await;
    }

    async fn show(&self, html: String, keyboard: Option<crate::telegram::InlineKeyboard>) {
        if let Err(e) = self
            .state
            .outbox
            .send_to(ChatRef::flat(self.chat), html, keyboard)
            .await
        {
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
}

impl answer_stream::Reader for Waiter {
    async fn event(&mut self, _conn: &mut Conn, event: OutputEvent) {
        match event {
            OutputEvent::Sessions(answer) if matches!(self.wanted, Wanted::Sessions) => {
                self.said_something = true;
                self.show_list(answer).await;
            }
            OutputEvent::Rules(answer) => {
                if let Wanted::Rules(view) = self.wanted {
                    self.said_something = true;
                    let (text, keyboard) = view(&self.agent, &answer);
                    self.show(text, keyboard).await;
                }
            }
            OutputEvent::Notice(n) => {
                self.said_something = true;
                self.say(format!(
                    "<b>{}</b>: <i>{}</i>",
                    escape_html(&self.agent.name),
                    escape_html(&n.text)
                ))
                .await;
            }
            _ => {}
        }
    }
}
