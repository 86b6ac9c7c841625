//! Unpairing, from the bot (`/unpair NAME`) or the daemon
//! (`DELETE /api/agents/{id}`): tell the daemon (signed `unpaired`), delete
//! its Redis user (Redis drops its connections), revoke the row, close its
//! forum topics, tell the owner.

use remoteagent_proto::events::{CommandEvent, DoneStatus, UnpairedPayload};

use crate::commands;
use crate::db::{agents, sessions, users};
use crate::state::AppState;
use crate::telegram::escape_html;

#[derive(Debug, thiserror::Error)]
pub enum UnpairError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl From<UnpairError> for crate::error::Error {
    fn from(e: UnpairError) -> Self {
        crate::error::Error::internal(e)
    }
}

/// Revokes `agent`. Returns false if it was not active (already revoked).
pub async fn unpair(state: &AppState, agent: &agents::Agent) -> Result<bool, UnpairError> {
    let id = agent.id.clone();
    // Revoke first: from here on its JWT no longer authenticates to the API,
    // whatever happens to the Redis calls below.
    if !agents::revoke(&state.db, &agent.id).await? {
        return Ok(false);
    }
    // The daemon may be offline; then it learns on its next connection
    // attempt, which fails because its Redis user is gone.
    match commands::publish(
        &state.redis,
        &state.key,
        &id,
        CommandEvent::Unpaired(UnpairedPayload {}),
    )
    .await
    {
        Ok(n) => tracing::debug!(agent = %id, receivers = n, "published unpaired"),
        Err(e) => tracing::warn!(agent = %id, error = %e, "publishing unpaired"),
    }
    state.acl.delete_agent_user(&id).await?;
    // The daemon lost its Redis access and may not have written the running
    // session's `done`: close it here so its message does not stay "working"
    // (the forwarder stops at the first `done`, so a second one is harmless).
    if let Some(running) = sessions::running_for_agent(&state.db, &agent.id).await? {
        let sid = running.id;
        if let Err(e) = commands::close_stream(
            &state.redis,
            &id,
            &sid,
            DoneStatus::Aborted,
            "the agent was unpaired",
        )
        .await
        {
            tracing::warn!(agent = %id, session = %sid, error = %e, "closing the running session");
        }
    }
    if let Some(owner) = users::get(&state.db, agent.owner).await?
        && owner.current_agent.as_ref() == Some(&agent.id)
    {
        users::set_current_agent(&state.db, agent.owner, None).await?;
    }
    // Its forum topics are told and closed (`crate::topics`).
    crate::topics::close_all(&state.db, &state.outbox, &id, &agent.name).await;
    tracing::info!(agent = %id, owner = agent.owner, "agent unpaired");
    let text = format!("🔌 <b>{}</b> was unpaired.", escape_html(&agent.name));
    // Private chats have the user's id as chat id.
    if let Err(e) = state.outbox.send(agent.owner, text, None).await {
        tracing::warn!(agent = %id, error = %e, "telling the owner about the unpairing");
    }
    Ok(true)
}
