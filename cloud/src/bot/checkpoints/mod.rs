//! The diff card's buttons (`crate::checkpoint_card`): 🔍 Diff (and ▶ Next
//! file), ↩️ Undo (and ↩️ Undo anyway), ✅ Commit and 🌿 Branch (a
//! proposed message, then ✅ Commit / 🌿 Branch or ✎ Edit message).
//!
//! Every press is checked for the owner (the run's session row, or for an
//! undo's own card the record kept when the undo was asked, `keep.rs`),
//! then sends a signed `checkpoint` command with a fresh answer id and
//! returns; a task of its own ([`follow`]) reads the answer's stream
//! (`crate::answer_stream`) and shows the result. The daemon decides;
//! the cloud only relays. After ✎ Edit message the user's next text is the
//! commit message ([`take_text`]).

mod follow;
mod keep;
mod texts;

use remoteagent_proto::SessionId;
use remoteagent_proto::checkpoints::{
    CheckpointAction, CheckpointPayload, MAX_COMMIT_MESSAGE_BYTES,
};
use remoteagent_proto::events::CommandEvent;

use super::Ctx;
use super::update::CallbackQuery;
use crate::checkpoint_card::Press;
use crate::commands;
use crate::db::{agents, sessions};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::telegram::{ChatRef, escape_html};
use texts::Asked;

use super::owner::NOT_YOURS;
const UNKNOWN: &str = "This card is too old or unknown.";
const MALFORMED: &str = "This button is malformed.";

/// A press of `ck:{rest}`; the text the button's spinner shows.
pub async fn press(state: &AppState, query: &CallbackQuery, rest: &str) -> Result<String> {
    let user = query.from.id;
    let Some((press, run)) = Press::parse(rest) else {
        return Ok(MALFORMED.into());
    };
    let (run, agent) = match owned_run(state, user, run).await? {
        Ok(found) => found,
        Err(text) => return Ok(text),
    };
    let to = query
        .message
        .as_ref()
        .map_or(ChatRef::flat(user), |m| ChatRef {
            chat: m.chat.id,
            thread: m.topic(),
        });
    let name = &agent.name;
    let (action, asked, edit) = match press {
        Press::Diff => (CheckpointAction::Diff { file: None }, Asked::Diff, None),
        Press::File(n) => (
            CheckpointAction::Diff { file: Some(n) },
            Asked::Diff,
            // Next file turns the page of the diff pressed.
            query.message.as_ref().map(|m| m.message_id),
        ),
        Press::Undo => (CheckpointAction::Undo { force: false }, Asked::Undo, None),
        Press::UndoAnyway => (CheckpointAction::Undo { force: true }, Asked::Undo, None),
        Press::ProposeCommit | Press::ProposeBranch => {
            let branch = press == Press::ProposeBranch;
            (
                CheckpointAction::ProposeCommit,
                Asked::Propose { branch },
                None,
            )
        }
        Press::Commit | Press::Branch => {
            let branch = press == Press::Branch;
            let Some(message) = keep::proposal(state, &run).await? else {
                return Ok(
                    "This proposal is too old: press ✅ Commit or 🌿 Branch on the card again."
                        .into(),
                );
            };
            let action = if branch {
                CheckpointAction::Branch { message }
            } else {
                CheckpointAction::Commit { message }
            };
            (action, Asked::Commit { branch }, None)
        }
        Press::EditCommit | Press::EditBranch => {
            let wait = keep::EditWait {
                run: run.to_string(),
                branch: press == Press::EditBranch,
            };
            keep::wait_for_edit(state, to.chat, user, &wait).await?;
            reply(
                state,
                to,
                format!(
                    "✎ Send the commit message for <b>{}</b> as your next message.",
                    escape_html(name)
                ),
            );
            return Ok("Send the commit message as a message.".into());
        }
    };
    let asking = Asking {
        to,
        user,
        agent,
        run,
        action,
        asked,
        edit,
    };
    asking.send(state).await
}

/// The run behind a button and its agent, if `user` owns it and the agent
/// is still paired; else what to tell them.
async fn owned_run(
    state: &AppState,
    user: i64,
    run: &str,
) -> Result<std::result::Result<(SessionId, agents::Agent), String>> {
    // Button data is whatever a client sends.
    let Ok(run) = SessionId::parse(run) else {
        return Ok(Err(UNKNOWN.into()));
    };
    let agent_id = match sessions::get(&state.db, &run).await? {
        Some(s) => s.agent_id,
        None => match keep::undo_owner(state, &run).await? {
            Some(o) if o.user == user => o.agent_id,
            Some(_) => return Ok(Err(NOT_YOURS.into())),
            None => return Ok(Err(UNKNOWN.into())),
        },
    };
    let Some(agent) = agents::get(&state.db, &agent_id).await? else {
        return Ok(Err("That agent was unpaired.".into()));
    };
    if agent.owner != user {
        return Ok(Err(NOT_YOURS.into()));
    }
    if !agent.is_active() {
        return Ok(Err("That agent was unpaired.".into()));
    }
    Ok(Ok((run, agent)))
}

/// Queues a message; a failure is logged (the outbox retried it).
fn reply(state: &AppState, to: ChatRef, html: String) {
    let sending = state.outbox.queue_send_to(to, html, None);
    tokio::spawn(async move {
        if let Err(e) = sending.wait().await {
            tracing::warn!(chat = to.chat, error = %e, "answering a checkpoint button");
        }
    });
}

/// One `checkpoint` command about to be sent.
struct Asking {
    to: ChatRef,
    user: i64,
    agent: agents::Agent,
    run: SessionId,
    action: CheckpointAction,
    asked: Asked,
    /// The message to show the answer in (Next file), instead of a new one.
    edit: Option<i64>,
}

impl Asking {
    /// Publishes the command and follows its answer in a task of its own;
    /// the words for the button's spinner (or the offline agent).
    async fn send(self, state: &AppState) -> Result<String> {
        let agent = &self.agent;
        if !commands::is_online(&state.redis, &agent.id).await? {
            Metrics::inc(&state.metrics.offline_answers);
            reply(state, self.to, super::prompt::offline_text(agent));
            return Ok(format!("{} is offline.", agent.name));
        }
        let answer = SessionId::generate();
        if matches!(self.action, CheckpointAction::Undo { .. }) {
            // Before the command: the undo's own card may come at once.
            let owner = keep::UndoOwner {
                user: self.user,
                agent_id: agent.id.clone(),
            };
            keep::keep_undo_owner(state, &answer, &owner).await?;
        }
        let command = CommandEvent::Checkpoint(CheckpointPayload {
            session_id: answer.clone(),
            run: self.run.clone(),
            action: self.action.clone(),
        });
        let receivers = commands::publish(&state.redis, &state.key, &agent.id, command)
            .await
            .map_err(Error::internal)?;
        if receivers == 0 {
            Metrics::inc(&state.metrics.offline_answers);
            reply(state, self.to, super::prompt::offline_text(agent));
            return Ok(format!("{} is offline.", agent.name));
        }
        tracing::info!(agent = %agent.id, run = %self.run, answer = %answer, action = ?self.asked, "checkpoint command published");
        let words = match self.asked {
            Asked::Diff if self.edit.is_some() => {
                format!("Asking {} for the next file…", agent.name)
            }
            Asked::Diff => format!("Asking {} for the diff…", agent.name),
            Asked::Undo => format!("Asking {} to undo the run…", agent.name),
            Asked::Propose { .. } => format!("Asking {} for a commit message…", agent.name),
            Asked::Commit { branch: false } => format!("Asking {} to commit…", agent.name),
            Asked::Commit { branch: true } => {
                format!("Asking {} to commit on a new branch…", agent.name)
            }
        };
        let follower = follow::Follower {
            state: state.clone(),
            to: self.to,
            agent: self.agent,
            run: self.run,
            answer,
            asked: self.asked,
            edit: self.edit,
            said_something: false,
        };
        tokio::spawn(follower.run());
        Ok(words)
    }
}

/// The user's text after ✎ Edit message, if one is waiting in this chat:
/// the commit is asked with it (true); `false` when nothing waits and the
/// text is something else.
pub async fn take_text(ctx: &Ctx<'_>, text: &str) -> Result<bool> {
    let state = ctx.state;
    let Some(wait) = keep::take_edit(state, ctx.chat, ctx.user).await? else {
        return Ok(false);
    };
    let to = ChatRef {
        chat: ctx.chat,
        thread: ctx.thread,
    };
    let (run, agent) = match owned_run(state, ctx.user, &wait.run).await? {
        Ok(found) => found,
        Err(why) => {
            ctx.reply(format!(
                "✎ That was not used as a commit message: {}",
                escape_html(&why)
            ))
            .await;
            return Ok(true);
        }
    };
    let message = text.trim();
    if message.len() > MAX_COMMIT_MESSAGE_BYTES {
        // Kept waiting: the user can send a shorter one.
        keep::wait_for_edit(state, ctx.chat, ctx.user, &wait).await?;
        ctx.reply(format!(
            "✎ That commit message is too long ({} bytes; at most {MAX_COMMIT_MESSAGE_BYTES}). Send a shorter one.",
            message.len()
        ))
        .await;
        return Ok(true);
    }
    let branch = wait.branch;
    let action = if branch {
        CheckpointAction::Branch {
            message: message.to_string(),
        }
    } else {
        CheckpointAction::Commit {
            message: message.to_string(),
        }
    };
    let asking = Asking {
        to,
        user: ctx.user,
        agent,
        run,
        action,
        asked: Asked::Commit { branch },
        edit: None,
    };
    let words = asking.send(state).await?;
    if words.ends_with("is offline.") {
        keep::wait_for_edit(state, ctx.chat, ctx.user, &wait).await?;
    } else {
        ctx.reply(format!("✎ {}", escape_html(&words))).await;
    }
    Ok(true)
}
