//! Plain text: a prompt for the user's current agent.
//!
//! Order matters: the session row and the forwarder (which sends the
//! placeholder and starts reading the output stream) come before the
//! command is published, so no output can be missed.

use remoteagent_proto::events::{CommandEvent, CommandPayload, DoneStatus, MAX_PROMPT_BYTES};
use remoteagent_proto::{AgentId, SessionId};

use super::Ctx;
use crate::commands;
use crate::db::{agents, sessions, users};
use crate::error::{Error, Result};
use crate::forwarder::SessionStart;
use crate::metrics::Metrics;
use crate::telegram::escape_html;

pub async fn run(ctx: &Ctx<'_>, text: &str) -> Result<()> {
    let state = ctx.state;
    if text.trim().is_empty() {
        return Ok(());
    }
    if text.len() > MAX_PROMPT_BYTES {
        ctx.reply(format!(
            "That prompt is too long ({} KiB); the limit is {} KiB. Please shorten it.",
            text.len().div_ceil(1024),
            MAX_PROMPT_BYTES / 1024
        ))
        .await;
        return Ok(());
    }
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    let agent_id = AgentId::parse(agent.id.as_str()).map_err(Error::internal)?;
    if !commands::is_online(&state.redis, &agent_id).await? {
        Metrics::inc(&state.metrics.offline_answers);
        ctx.reply(offline_text(&agent)).await;
        return Ok(());
    }
    let user = users::get(&state.db, ctx.user).await?;
    let fresh = user.as_ref().is_some_and(|u| u.next_new);
    let session_id = SessionId::generate();
    sessions::insert(
        &state.db,
        session_id.as_str(),
        &agent.id,
        ctx.chat,
        ctx.user,
        text,
    )
    .await?;
    let start = SessionStart {
        agent_id: agent_id.clone(),
        session_id: session_id.clone(),
        chat_id: ctx.chat,
        agent_name: agent.name.clone(),
    };
    if let Err(e) = state.forwarder.start(start).await {
        sessions::finish(
            &state.db,
            session_id.as_str(),
            DoneStatus::Error.as_str(),
            None,
            None,
        )
        .await?;
        return Err(Error::internal(format!("starting the forwarder: {e}")));
    }
    let command = CommandEvent::Command(CommandPayload {
        session_id: session_id.clone(),
        prompt: text.to_string(),
        r#continue: !fresh,
    });
    let receivers = match commands::publish(&state.redis, &state.key, &agent_id, command).await {
        Ok(n) => n,
        Err(e) => {
            close(
                ctx,
                &agent_id,
                &session_id,
                DoneStatus::Error,
                "could not reach the agent",
            )
            .await;
            return Err(Error::internal(e));
        }
    };
    if receivers == 0 {
        // The presence key outlived the daemon's subscription (it died a
        // moment ago): end the session the forwarder is waiting on.
        Metrics::inc(&state.metrics.offline_answers);
        close(
            ctx,
            &agent_id,
            &session_id,
            DoneStatus::Rejected,
            "agent is offline",
        )
        .await;
        ctx.reply(offline_text(&agent)).await;
        return Ok(());
    }
    Metrics::inc(&state.metrics.prompts_published);
    if fresh {
        users::set_next_new(&state.db, ctx.user, false).await?;
    }
    agents::touch(&state.db, &agent.id).await?;
    tracing::info!(agent = %agent_id, session = %session_id, chat = ctx.chat, fresh, "prompt published");
    Ok(())
}

async fn close(ctx: &Ctx<'_>, agent: &AgentId, session: &SessionId, status: DoneStatus, why: &str) {
    if let Err(e) = commands::close_stream(&ctx.state.redis, agent, session, status, why).await {
        tracing::warn!(agent = %agent, session = %session, error = %e, "closing a session's stream");
    }
}

fn offline_text(agent: &agents::Agent) -> String {
    format!(
        "⚪ <b>{}</b> is offline. Is remoteagentd running on {}?",
        escape_html(&agent.name),
        escape_html(&agent.hostname)
    )
}
