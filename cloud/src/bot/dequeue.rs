//! Queued prompts leave the queue (see `bot::queue`): the next one runs
//! when a run of its agent ends ([`after_run`], from the forwarder's
//! report), the housekeeping pass picks up queues whose agent is idle
//! ([`sweep`]: after a restart of the cloud, or a report that was lost),
//! and the buttons under a queued prompt's message ([`press`]):
//! `queue:run:{id}` (▶ Run now — stop current) and `queue:cancel:{id}`.
//!
//! The glue between `queue` and `prompt`, so that neither imports the
//! other's caller. A prompt is taken from the queue by one `DELETE`, under
//! the agent's start key ([`StartGuard`]): it runs once, on one replica.
//!
//! A queued prompt whose agent is offline (or was unpaired) when its turn
//! comes is dropped, with the rest of that agent's queue: the user is told
//! in words, each prompt quoted, and asked to send it again.

use remoteagent_proto::AgentId;

use super::queue::{self, StartGuard};
use super::update::CallbackQuery;
use super::{Ctx, prompt, stop};
use crate::commands;
use crate::db::{agents, queue as rows, sessions};
use crate::error::Result;
use crate::state::AppState;
use crate::telegram::escape_html;

const NOT_YOURS: &str = "Only the account that paired this agent can do that.";
const GONE: &str = "That queued prompt already ran or was cancelled.";

/// A run of `agent` ended: its next queued prompt, if any, runs.
pub async fn after_run(state: AppState, agent: AgentId) {
    if let Err(e) = run_next(&state, &agent).await {
        tracing::warn!(agent = %agent, error = %e, "running the next queued prompt");
    }
}

/// Every agent with a queue whose agent is idle runs its next prompt
/// (housekeeping).
pub async fn sweep(state: &AppState) -> Result<()> {
    for agent in rows::waiting_agents(&state.db).await? {
        if let Err(e) = run_next(state, &agent).await {
            tracing::warn!(agent = %agent, error = %e, "running a queued prompt (housekeeping)");
        }
    }
    Ok(())
}

/// Runs the next queued prompt of `agent` if it is idle.
pub async fn run_next(state: &AppState, agent_id: &AgentId) -> Result<()> {
    let Some(_guard) = StartGuard::take_waiting(&state.redis, agent_id, &state.shutdown).await?
    else {
        return Ok(());
    };
    if queue::busy(state, agent_id).await? {
        return Ok(());
    }
    let agent = agents::get(&state.db, agent_id).await?;
    let Some(agent) = agent.filter(agents::Agent::is_active) else {
        drop_all(state, agent_id, None, "it was unpaired").await?;
        return Ok(());
    };
    if !commands::is_online(&state.redis, agent_id).await? {
        drop_all(state, agent_id, Some(&agent), "it is offline").await?;
        return Ok(());
    }
    let Some(entry) = rows::claim_next(&state.db, agent_id).await? else {
        return Ok(());
    };
    tracing::info!(agent = %agent_id, "running a queued prompt");
    let ctx = Ctx {
        state,
        chat: entry.chat_id,
        user: entry.user_id,
        private: entry.private_chat,
        // A queued prompt's run goes to its agent's topic where the chat
        // has topics (`publish` opens or finds it), as an album's does.
        thread: None,
        forum: entry.private_chat && state.topics_in_private,
    };
    if let Some(message) = entry.message_id {
        // The edit goes first: the outbox keeps a chat's messages in
        // order, so it comes before the run's output.
        edit(
            state,
            entry.chat_id,
            message,
            queue::running_html(&agent.name, &entry.prompt),
            None,
        );
    }
    if let Err(e) = prompt::run_queued(&ctx, agent.clone(), &entry.prompt).await {
        tracing::error!(agent = %agent_id, error = %e, "starting a queued prompt");
        ctx.reply(format!(
            "⚠️ Your queued prompt for <b>{}</b> could not be started: something went wrong on \
our side. Please send it again: “{}”",
            escape_html(&agent.name),
            escape_html(&entry.prompt)
        ))
        .await;
    }
    Ok(())
}

/// Drops the whole queue of `agent_id` (offline or unpaired when its turn
/// came) and tells each prompt's chat.
async fn drop_all(
    state: &AppState,
    agent_id: &AgentId,
    agent: Option<&agents::Agent>,
    why: &str,
) -> Result<()> {
    let name = match agent {
        Some(a) => a.name.clone(),
        None => agents::get(&state.db, agent_id)
            .await?
            .map_or_else(|| "your agent".to_string(), |a| a.name),
    };
    while let Some(entry) = rows::claim_next(&state.db, agent_id).await? {
        tracing::info!(agent = %agent_id, why, "dropped a queued prompt");
        if let Some(message) = entry.message_id {
            edit(
                state,
                entry.chat_id,
                message,
                queue::dropped_html(&name, &entry.prompt, why),
                None,
            );
        }
        let ctx = Ctx {
            state,
            chat: entry.chat_id,
            user: entry.user_id,
            private: entry.private_chat,
            thread: None,
            forum: entry.private_chat && state.topics_in_private,
        };
        ctx.reply(format!(
            "⚪ <b>{}</b> was not available when your queued prompt's turn came ({why}), so it \
was dropped from the queue. Send it again once <b>{}</b> is back: “{}”",
            escape_html(&name),
            escape_html(&name),
            escape_html(&entry.prompt)
        ))
        .await;
    }
    Ok(())
}

/// Edits a message of the queue; a failure is logged (the outbox has
/// retried it already).
fn edit(
    state: &AppState,
    chat: i64,
    message: i64,
    html: String,
    keyboard: Option<crate::telegram::InlineKeyboard>,
) {
    let delivery = state.outbox.edit(chat, message, html, keyboard);
    tokio::spawn(async move {
        if let Err(e) = delivery.wait().await {
            tracing::warn!(chat, message, error = %e, "editing a queued prompt's message");
        }
    });
}

/// A button under a queued prompt (`rest`: `run:{id}` or `cancel:{id}`);
/// returns the callback's answer.
pub async fn press(state: &AppState, query: &CallbackQuery, rest: &str) -> Result<String> {
    let (action, id) = rest.split_once(':').unwrap_or((rest, ""));
    let Some(entry) = rows::get(&state.db, id).await? else {
        return Ok(GONE.into());
    };
    let Some(agent) = agents::get(&state.db, &entry.agent_id).await? else {
        return Ok(GONE.into());
    };
    if agent.owner != query.from.id {
        return Ok(NOT_YOURS.into());
    }
    match action {
        "run" => run_now(state, entry, agent).await,
        "cancel" => cancel(state, query, entry, agent).await,
        _ => Ok("This button is malformed.".into()),
    }
}

/// ▶ Run now — stop current: the prompt goes ahead of the queue, and the
/// current run is aborted (its end runs the prompt); an idle agent runs it
/// at once.
async fn run_now(
    state: &AppState,
    entry: rows::QueuedPrompt,
    agent: agents::Agent,
) -> Result<String> {
    if !rows::move_to_front(&state.db, &entry.id, &agent.id).await? {
        return Ok(GONE.into());
    }
    let running = sessions::running_for_agent(&state.db, &agent.id).await?;
    match running {
        Some(session) if queue::busy(state, &agent.id).await? => {
            if !stop::abort(state, &agent, &session.id).await? {
                return Ok(format!("{} is offline.", agent.name));
            }
            if let Some(message) = entry.message_id {
                edit(
                    state,
                    entry.chat_id,
                    message,
                    format!(
                        "⏳ next for <b>{}</b>: stopping the current run…",
                        escape_html(&agent.name)
                    ),
                    Some(queue::cancel_keyboard(&entry.id)),
                );
            }
            Ok("Stopping the current run; this prompt runs next.".into())
        }
        _ => {
            run_next(state, &agent.id).await?;
            Ok("Running it now.".into())
        }
    }
}

/// ✖ Cancel: the prompt leaves the queue; its message says so. Pressed
/// under `/queue`'s list, the list is shown again without it.
async fn cancel(
    state: &AppState,
    query: &CallbackQuery,
    entry: rows::QueuedPrompt,
    agent: agents::Agent,
) -> Result<String> {
    let Some(entry) = rows::remove(&state.db, &entry.id).await? else {
        return Ok(GONE.into());
    };
    tracing::info!(agent = %agent.id, "a queued prompt was cancelled");
    let cancelled = queue::cancelled_html(&agent.name, &entry.prompt);
    if let Some(message) = entry.message_id {
        edit(state, entry.chat_id, message, cancelled.clone(), None);
    }
    if let Some(pressed) = &query.message
        && Some(pressed.message_id) != entry.message_id
    {
        let (html, keyboard) = queue::listing(state, &agent).await?;
        edit(state, pressed.chat.id, pressed.message_id, html, keyboard);
    }
    Ok("Cancelled.".into())
}
