//! `/clean`: the current agent's finished git worktrees of parallel runs
//! (`worktrees = true` on its computer) removed, their branches kept. The
//! signed `clean_worktrees` command is answered on the output stream of a
//! fresh request id, followed like `/sessions`' (its notice says what was
//! removed).

use remoteagent_proto::SessionId;
use remoteagent_proto::events::CommandEvent;
use remoteagent_proto::worktrees::CleanWorktreesPayload;

use super::super::Ctx;
use super::waiter;
use crate::commands;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

pub async fn run(ctx: &Ctx<'_>) -> Result<()> {
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    let state = ctx.state;
    if !commands::is_online(&state.redis, &agent.id).await? {
        Metrics::inc(&state.metrics.offline_answers);
        ctx.reply(super::super::prompt::offline_text(&agent)).await;
        return Ok(());
    }
    let request = SessionId::generate();
    let command = CommandEvent::CleanWorktrees(CleanWorktreesPayload {
        session_id: request.clone(),
    });
    let receivers = commands::publish(&state.redis, &state.key, &agent.id, command)
        .await
        .map_err(Error::internal)?;
    if receivers == 0 {
        Metrics::inc(&state.metrics.offline_answers);
        ctx.reply(super::super::prompt::offline_text(&agent)).await;
        return Ok(());
    }
    tracing::info!(agent = %agent.id, request = %request, chat = ctx.chat, "/clean published");
    let waiter = waiter::Waiter {
        state: state.clone(),
        chat: ctx.chat,
        user: ctx.user,
        agent,
        request,
        wanted: waiter::Wanted::Clean,
        said_something: false,
    };
    tokio::spawn(waiter.run());
    Ok(())
}
