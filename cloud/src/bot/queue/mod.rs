//! The queue while busy: a prompt for an agent that is busy with a run
//! waits in the database (`db::queue`, so it survives a restart of the
//! cloud) and runs when the run ends (`bot::dequeue`).
//!
//! * [`gate`] decides, for a typed prompt, whether it runs now or waits:
//!   it waits while the agent is busy (its latest session row is running
//!   and the forwarder still follows it), while others wait before it (the
//!   order is kept), or while another replica is starting a run for the
//!   agent ([`StartGuard`]).
//! * [`list`] is `/queue`; the texts and buttons live here too.
//!
//! Prompts that carry files are not queued: their blobs live 15 minutes,
//! and a queue may wait longer. The user is told, and the files stay
//! waiting for the next prompt (`attachments`).

mod guard;
mod texts;

pub use guard::StartGuard;
pub use texts::{
    cancel_keyboard, cancelled_html, dropped_html, queued_html, queued_keyboard, running_html,
};

use super::{Ctx, attachments};
use crate::db::{agents, queue, sessions};
use crate::error::{Error, Result};
use crate::forwarder;
use crate::state::AppState;
use crate::telegram::{InlineButton, InlineKeyboard, escape_html};
use remoteagent_proto::AgentId;

/// Button data prefixes (`callback.rs` hands `queue:` to `bot::dequeue`).
pub const RUN_NOW: &str = "queue:run:";
pub const CANCEL: &str = "queue:cancel:";

/// What becomes of a typed prompt.
pub enum Gate {
    /// Run it now; hold the guard until its session is recorded.
    Run(StartGuard),
    /// It was queued, or refused; the user has been told.
    Held,
}

/// Whether `agent` is busy with a run, as far as the cloud knows: its
/// latest session row is running and the forwarder still follows that
/// session. A row left running by a forwarder state Redis lost does not
/// keep the agent busy forever; the daemon refuses a second command
/// anyway (the backstop).
pub async fn busy(state: &AppState, agent: &AgentId) -> Result<bool> {
    let Some(session) = sessions::running_for_agent(&state.db, agent).await? else {
        return Ok(false);
    };
    forwarder::is_forwarding(&mut state.redis.clone(), &session.id)
        .await
        .map_err(Error::internal)
}

/// Decides whether `text`, typed for `agent` (online), runs now or waits.
pub async fn gate(ctx: &Ctx<'_>, agent: &agents::Agent, text: &str) -> Result<Gate> {
    let state = ctx.state;
    let guard = StartGuard::take_waiting(&state.redis, &agent.id, &state.shutdown).await?;
    let guard = match guard {
        Some(g)
            if queue::count(&state.db, &agent.id).await? == 0
                && !busy(state, &agent.id).await? =>
        {
            return Ok(Gate::Run(g));
        }
        other => other,
    };
    let name = escape_html(&agent.name);
    let files = attachments::pending::load(&state.redis, ctx.chat, ctx.user).await?;
    if files.is_some_and(|f| f.live_count(attachments::pending::now()) > 0) {
        ctx.reply(format!(
            "📎 <b>{name}</b> is busy with a run, and a prompt with files does not wait in \
the queue (files are kept only {} minutes). Nothing was queued; your files are still waiting: \
send your prompt again when the run ends.",
            remoteagent_proto::files::BLOB_TTL_SECS / 60
        ))
        .await;
        return Ok(Gate::Held);
    }
    let id = queue::new_id();
    let max = state.config.queue_max_prompts;
    let pushed = queue::push(
        &state.db,
        &id,
        &agent.id,
        ctx.chat,
        ctx.user,
        ctx.private,
        text,
        max,
    )
    .await?;
    // Queued: the guard is no longer needed (dropping it releases it).
    drop(guard);
    match pushed {
        queue::Pushed::Full => {
            ctx.reply(format!(
                "✋ <b>{name}</b> already has {max} {} waiting, the most its queue holds. This \
prompt was not queued: send it again when a run ends, or cancel one with /queue.",
                if max == 1 { "prompt" } else { "prompts" }
            ))
            .await;
        }
        queue::Pushed::At(place) => {
            tracing::info!(agent = %agent.id, place, "prompt queued");
            let sending = state.outbox.queue_send(
                ctx.chat,
                queued_html(place, &agent.name),
                Some(queued_keyboard(&id)),
            );
            // The message id is stored once Telegram answers, so that the
            // message can be edited when the prompt runs or is cancelled;
            // the user's next update does not wait for it.
            let state = state.clone();
            tokio::spawn(async move {
                match sending.wait().await {
                    Ok(message) => {
                        if let Err(e) = queue::set_message(&state.db, &id, message).await {
                            tracing::warn!(error = %e, "recording a queued prompt's message");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "sending a queued prompt's message"),
                }
            });
        }
    }
    Ok(Gate::Held)
}

/// `/queue`: the current agent's queued prompts, with Cancel buttons.
pub async fn list(ctx: &Ctx<'_>) -> Result<()> {
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    let (html, keyboard) = listing(ctx.state, &agent).await?;
    ctx.reply_with(html, keyboard).await;
    Ok(())
}

/// The `/queue` message of `agent`: its text and Cancel buttons.
pub async fn listing(
    state: &AppState,
    agent: &agents::Agent,
) -> Result<(String, Option<InlineKeyboard>)> {
    let entries = queue::list(&state.db, &agent.id).await?;
    let name = escape_html(&agent.name);
    if entries.is_empty() {
        return Ok((format!("The queue of <b>{name}</b> is empty."), None));
    }
    let mut html = format!(
        "⏳ <b>{name}</b> has {} queued, run in this order when the current run ends:",
        texts::prompts(entries.len())
    );
    let mut rows = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        html.push_str(&format!(
            "\n{}. “{}”",
            i + 1,
            escape_html(&texts::preview(&entry.prompt))
        ));
        rows.push(vec![InlineButton {
            text: format!("✖ Cancel {}", i + 1),
            callback_data: format!("{CANCEL}{}", entry.id),
        }]);
    }
    Ok((
        html,
        Some(InlineKeyboard {
            inline_keyboard: rows,
        }),
    ))
}
