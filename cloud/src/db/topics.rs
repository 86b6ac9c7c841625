//! `agent_topics`: the forum topic of each agent in a chat (see
//! `crate::topics`).

use remoteagent_proto::AgentId;

use super::{Db, now, parse_id};

/// An agent's topic in a chat.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Topic {
    pub chat_id: i64,
    #[sqlx(try_from = "String")]
    pub agent_id: AgentId,
    pub thread_id: i64,
    /// The name the topic was given.
    pub name: String,
}

const COLUMNS: &str = "chat_id, agent_id, thread_id, name";

/// `agent`'s topic in `chat`, if it has one.
pub async fn get(db: &Db, chat: i64, agent: &AgentId) -> Result<Option<Topic>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM agent_topics WHERE chat_id = $1 AND agent_id = $2");
    sqlx::query_as::<_, Topic>(sqlx::AssertSqlSafe(sql))
        .bind(chat)
        .bind(agent.as_str().to_string())
        .fetch_optional(&db.pool)
        .await
}

/// The agent whose topic `thread` of `chat` is, if any.
pub async fn agent_at(db: &Db, chat: i64, thread: i64) -> Result<Option<AgentId>, sqlx::Error> {
    sqlx::query_scalar::<_, String>(
        "SELECT agent_id FROM agent_topics WHERE chat_id = $1 AND thread_id = $2",
    )
    .bind(chat)
    .bind(thread)
    .fetch_optional(&db.pool)
    .await?
    .map(parse_id)
    .transpose()
}

/// Records (or replaces) `agent`'s topic in `chat`.
pub async fn set(
    db: &Db,
    chat: i64,
    agent: &AgentId,
    thread: i64,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agent_topics (chat_id, agent_id, thread_id, name, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (chat_id, agent_id) DO UPDATE SET \
         thread_id = excluded.thread_id, name = excluded.name, created_at = excluded.created_at",
    )
    .bind(chat)
    .bind(agent.as_str().to_string())
    .bind(thread)
    .bind(name)
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Records the name the topic now has.
pub async fn rename(db: &Db, chat: i64, agent: &AgentId, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE agent_topics SET name = $1 WHERE chat_id = $2 AND agent_id = $3")
        .bind(name)
        .bind(chat)
        .bind(agent.as_str().to_string())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Every topic of `agent`, in every chat.
pub async fn of_agent(db: &Db, agent: &AgentId) -> Result<Vec<Topic>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM agent_topics WHERE agent_id = $1 ORDER BY chat_id");
    sqlx::query_as::<_, Topic>(sqlx::AssertSqlSafe(sql))
        .bind(agent.as_str().to_string())
        .fetch_all(&db.pool)
        .await
}

/// Forgets `agent`'s topics (it was unpaired).
pub async fn remove_agent(db: &Db, agent: &AgentId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM agent_topics WHERE agent_id = $1")
        .bind(agent.as_str().to_string())
        .execute(&db.pool)
        .await?;
    Ok(())
}
