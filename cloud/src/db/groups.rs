//! `group_chats`: the groups where an owner opted an agent in with
//! `/allowgroup` (one agent per owner and group).

use remoteagent_proto::AgentId;

use super::{Db, now, parse_id};

/// Opts `chat` in for `owner`'s prompts to `agent` (replacing another
/// agent they opted in there before).
pub async fn allow(db: &Db, chat: i64, owner: i64, agent: &AgentId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO group_chats (chat_id, owner, agent_id, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (chat_id, owner) DO UPDATE SET agent_id = excluded.agent_id, created_at = excluded.created_at",
    )
    .bind(chat)
    .bind(owner)
    .bind(agent.as_str().to_string())
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Withdraws `owner`'s opt-in of `chat`; false if there was none.
pub async fn disallow(db: &Db, chat: i64, owner: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM group_chats WHERE chat_id = $1 AND owner = $2")
        .bind(chat)
        .bind(owner)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The agent `owner` opted `chat` in for, if any.
pub async fn agent_for(db: &Db, chat: i64, owner: i64) -> Result<Option<AgentId>, sqlx::Error> {
    sqlx::query_scalar::<_, String>(
        "SELECT agent_id FROM group_chats WHERE chat_id = $1 AND owner = $2",
    )
    .bind(chat)
    .bind(owner)
    .fetch_optional(&db.pool)
    .await?
    .map(parse_id)
    .transpose()
}
