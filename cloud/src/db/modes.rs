//! `agent_modes`: each agent's mode as chosen with `/mode`, sent in every
//! `command`. No row means none chosen: the command carries no mode and the
//! computer's policy decides.

use remoteagent_proto::AgentId;
use remoteagent_proto::modes::Mode;
use sqlx::Row;

use super::{Db, now};

/// The mode chosen for `agent`. A stored word this build does not know (a
/// newer cloud's, on a shared database) reads as none chosen.
pub async fn get(db: &Db, agent: &AgentId) -> Result<Option<Mode>, sqlx::Error> {
    let row = sqlx::query("SELECT mode FROM agent_modes WHERE agent_id = $1")
        .bind(agent.as_str().to_string())
        .fetch_optional(&db.pool)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(row.try_get::<String, _>("mode")?.parse().ok()),
    }
}

/// Stores `mode` for `agent`.
pub async fn set(db: &Db, agent: &AgentId, mode: Mode) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agent_modes (agent_id, mode, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (agent_id) DO UPDATE SET mode = excluded.mode, updated_at = excluded.updated_at",
    )
    .bind(agent.as_str().to_string())
    .bind(mode.as_str().to_string())
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(())
}
