//! `/stop` and the Stop button: a signed `abort` for the running session.

use remoteagent_proto::SessionId;
use remoteagent_proto::events::{AbortPayload, CommandEvent};

use super::Ctx;
use crate::commands;
use crate::db::{agents, sessions};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::telegram::escape_html;

pub async fn run(ctx: &Ctx<'_>) -> Result<()> {
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    let Some(session) = sessions::running_for_agent(&ctx.state.db, &agent.id).await? else {
        ctx.reply(format!(
            "Nothing is running on <b>{}</b>.",
            escape_html(&agent.name)
        ))
        .await;
        return Ok(());
    };
    match abort(ctx.state, &agent, &session.id).await? {
        true => {
            ctx.reply(format!("⏹ Stopping <b>{}</b>…", escape_html(&agent.name)))
                .await
        }
        false => {
            ctx.reply(format!(
                "<b>{}</b> is offline, so nothing can be stopped right now.",
                escape_html(&agent.name)
            ))
            .await
        }
    }
    Ok(())
}

/// Publishes `abort` for `session`; false if the agent did not receive it.
pub async fn abort(
    state: &AppState,
    agent: &agents::Agent,
    session_id: &SessionId,
) -> Result<bool> {
    let agent_id = &agent.id;
    let receivers = commands::publish(
        &state.redis,
        &state.key,
        agent_id,
        CommandEvent::Abort(AbortPayload {
            session_id: session_id.clone(),
        }),
    )
    .await
    .map_err(Error::internal)?;
    tracing::info!(agent = %agent_id, session = %session_id, receivers, "published abort");
    Ok(receivers > 0)
}
