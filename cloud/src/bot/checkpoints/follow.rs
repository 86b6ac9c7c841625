//! Follows the answer to one `checkpoint` command on its stream
//! (`crate::answer_stream`) and shows it: the diff (with ▶ Next file, and a
//! long diff's `.diff`/`.html` documents), the undo (or its refusal with ↩️
//! Undo anyway, and the undo's own card when it changed files), the
//! proposed commit message with its buttons, the commit, or the failure in
//! words. A silent daemon, an unreadable stream and a cloud shutting down
//! are said too.

use std::time::Duration;

use remoteagent_proto::SessionId;
use remoteagent_proto::checkpoints::{ChangesPayload, CheckpointResult};
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_rediskit::Conn;

use super::keep;
use super::texts::{self, Asked};
use crate::answer_stream::{self, End};
use crate::checkpoint_card::{self, CardOf};
use crate::db::agents::Agent;
use crate::state::AppState;
use crate::telegram::{ChatRef, InlineKeyboard, escape_html};

/// Longest wait for the whole answer once the daemon took the command: a
/// long diff's files are blobs that live 15 minutes.
const WHOLE_ANSWER: Duration = Duration::from_secs(10 * 60);

pub(super) struct Follower {
    pub state: AppState,
    pub to: ChatRef,
    pub agent: Agent,
    /// The run whose checkpoint was asked about.
    pub run: SessionId,
    /// The answer's stream id.
    pub answer: SessionId,
    pub asked: Asked,
    /// The message to show a diff in (▶ Next file), instead of a new one.
    pub edit: Option<i64>,
    /// A result (or a notice) was shown before `done`.
    pub said_something: bool,
}

impl Follower {
    pub async fn run(mut self) {
        let state = self.state.clone();
        let (agent, answer) = (self.agent.id.clone(), self.answer.clone());
        let end = answer_stream::follow(&state, &agent, &answer, WHOLE_ANSWER, &mut self).await;
        let name = escape_html(&self.agent.name);
        let button = self.asked.button();
        let words = match end {
            End::Done(done) => {
                tracing::info!(agent = %self.agent.id, answer = %self.answer, status = done.status.as_str(), "checkpoint answered");
                if self.said_something {
                    return;
                }
                let why = if done.status == DoneStatus::Ok {
                    "the answer held no result".to_string()
                } else {
                    done.message.unwrap_or_else(|| done.status.as_str().into())
                };
                format!("⚠️ <b>{name}</b> ({button}): {}", escape_html(&why))
            }
            End::Cancelled => format!(
                "⚠️ The cloud is restarting: {button} on <b>{name}</b> was cut short. Press it again in a moment."
            ),
            End::Silent => answer_stream::silent_words(&self.state, &self.agent, button, button)
                .await
                .unwrap_or_else(|| super::super::prompt::offline_text(&self.agent)),
            End::Unfinished => {
                format!("⚠️ <b>{name}</b> did not finish its answer to {button} in time.")
            }
            End::Unreadable(e) => {
                tracing::error!(agent = %self.agent.id, answer = %self.answer, error = %e, "reading a checkpoint answer");
                format!(
                    "⚠️ The answer of <b>{name}</b> to {button} could not be read. Please try again."
                )
            }
        };
        self.say(words).await;
    }

    async fn say(&self, html: String) {
        answer_stream::say(&self.state, self.to, html).await;
    }

    async fn show(&self, html: String, keyboard: Option<InlineKeyboard>) {
        if let Err(e) = self.state.outbox.send_to(self.to, html, keyboard).await {
            tracing::warn!(chat = self.to.chat, error = %e, "showing a checkpoint answer");
        }
    }

    /// A diff page: in the message pressed (▶ Next file), else a new one.
    async fn show_diff(&self, html: String, keyboard: Option<InlineKeyboard>) {
        if let Some(message) = self.edit {
            let edited = self
                .state
                .outbox
                .edit(self.to.chat, message, html.clone(), keyboard.clone())
                .wait()
                .await;
            match edited {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(chat = self.to.chat, message, error = %e, "turning the page of a diff; sending it anew")
                }
            }
        }
        self.show(html, keyboard).await;
    }

    async fn result(&self, result: CheckpointResult) {
        let name = &self.agent.name;
        match result {
            CheckpointResult::Diff {
                files,
                file,
                diff,
                truncated,
            } => {
                let html = texts::diff_html(name, &files, file, &diff, truncated);
                let keyboard = texts::next_keyboard(&self.run, files.len(), file);
                self.show_diff(html, keyboard).await;
            }
            CheckpointResult::Undone { restored } => {
                self.say(texts::undone_html(name, &restored)).await;
            }
            CheckpointResult::UndoRefused { changed_since } => {
                let html = texts::undo_refused_html(name, &changed_since);
                self.show(html, texts::undo_anyway_keyboard(&self.run))
                    .await;
            }
            CheckpointResult::CommitProposal { message } => {
                let branch = matches!(self.asked, Asked::Propose { branch: true });
                let html = texts::proposal_html(name, &message, branch);
                match keep::keep_proposal(&self.state, &self.run, &message).await {
                    Ok(()) => {
                        let keyboard = texts::proposal_keyboard(&self.run, branch);
                        self.show(html, keyboard).await;
                    }
                    Err(e) => {
                        tracing::error!(agent = %self.agent.id, error = %e, "keeping a proposed commit message");
                        self.say(format!(
                            "{html}\n\n⚠️ Its buttons could not be kept on our side; press the card's button again in a moment."
                        ))
                        .await;
                    }
                }
            }
            CheckpointResult::Committed {
                commit,
                branch,
                files,
            } => {
                let on_new = matches!(self.asked, Asked::Commit { branch: true });
                self.say(texts::committed_html(&commit, &branch, files, on_new))
                    .await;
            }
            CheckpointResult::Failed { message } => {
                self.say(texts::failed_html(name, self.asked, &message))
                    .await;
            }
            CheckpointResult::Unknown => {
                self.say(texts::unknown_html(name, self.asked)).await;
            }
        }
    }

    /// An undo's own changes: a card of their own, whose buttons name the
    /// undo's answer (its checkpoint).
    async fn undo_card(&self, changes: &ChangesPayload) {
        let mut html = checkpoint_card::card_html(&self.agent.name, changes, CardOf::Undo);
        let keyboard = match checkpoint_card::card_keyboard(&self.answer) {
            Ok(k) => Some(k),
            Err(line) => {
                html.push('\n');
                html.push_str(line);
                None
            }
        };
        self.show(html, keyboard).await;
    }
}

impl answer_stream::Reader for Follower {
    async fn event(&mut self, conn: &mut Conn, event: OutputEvent) {
        match event {
            OutputEvent::CheckpointResult(r) => {
                self.said_something = true;
                self.result(r).await;
            }
            OutputEvent::Changes(c) => {
                self.said_something = true;
                self.undo_card(&c).await;
            }
            OutputEvent::File(f) => {
                self.said_something = true;
                let caption = format!(
                    "📎 The changes of <b>{}</b>'s run",
                    escape_html(&self.agent.name)
                );
                answer_stream::send_file(&self.state, self.to, conn, &self.agent.id, &f, caption)
                    .await;
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
